"""Config errors name the file, the key path and the line; all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.configfile import ConfigError, load_config
from core.settings import SecretRef


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postbud.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_example_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "config.example.toml")
    assert config.organisations[0].cvr == "12345678"
    assert config.http.listen == "127.0.0.1:9464"
    mailbox = config.organisations[0].mailboxes[0]
    assert mailbox.type == "folder"


def test_missing_file_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: configuration file not found"]


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nurl = \n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:2: not valid TOML")


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, '[encryption]\nkeyring = "keys/k.json"\n[database]\nurl = "sqlite:///var/p.db"\n')
    config = load_config(path)
    assert config.encryption.keyring == tmp_path / "keys" / "k.json"
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'p.db'}"


def test_database_url_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTBUD_DATABASE_URL", "postgresql://db/x")
    assert load_config(write(tmp_path, "")).database_url == "postgresql://db/x"


def test_secret_refs_come_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_TOKEN", "s3cret")
    (tmp_path / "token").write_text("from-file\n")
    assert SecretRef(env="PB_TOKEN").reveal() == "s3cret"
    ref = SecretRef.model_validate({"file": "token"}, context={"base_dir": tmp_path})
    assert ref.reveal() == "from-file"
    assert "s3cret" not in repr(SecretRef(env="PB_TOKEN"))
    with pytest.raises(LookupError, match="PB_MISSING"):
        SecretRef(env="PB_MISSING").reveal()


def test_duplicate_cvr_and_mailbox_names_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[[organisations]]
cvr = "11111111"
name = "A"
[[organisations]]
cvr = "11111111"
name = "B"
""",
    )
    assert any("repeated cvr: 11111111" in p for p in problems(path))


def test_default_paths_resolve_against_the_config_folder_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.encryption.keyring == tmp_path / "var" / "keys" / "keyring.json"
    assert config.model.folder == tmp_path / "var" / "models"
    assert config.sandbox.folder == tmp_path / "var" / "sandbox"
