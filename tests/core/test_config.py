"""Config errors name the file, the key path and the line; all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, SecretRef, load_config


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


def test_every_error_reported_with_key_path_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[database]
url = "sqlite:///x.db"
colour = "blue"

[schedule]
poll_interval_seconds = "often"

[[organisations]]
cvr = "1234"
name = "A"

[[organisations]]
cvr = "87654321"
name = "B"
  [[organisations.mailboxes]]
  name = "drop"
  type = "folder"
  pathh = "x"
""",
    )
    found = problems(path)
    assert f"{path}:3: database.colour: unknown key" in found
    assert any(p.startswith(f"{path}:6: schedule.poll_interval_seconds:") for p in found)
    assert f"{path}:9: organisations[0].cvr: a CVR number is 8 digits, not '1234'" in found
    # The mailbox's own settings are checked too, though other sections have errors (issue 16).
    assert f"{path}:18: organisations[1].mailboxes[0].pathh: unknown key" in found
    assert f"{path}:15: organisations[1].mailboxes[0].path: required key is missing" in found
    assert len(found) == 5


def test_connector_settings_are_validated_per_mailbox(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[[organisations]]
cvr = "87654321"
name = "B"
  [[organisations.mailboxes]]
  name = "drop"
  type = "folder"
  path = "in"
  [[organisations.mailboxes]]
  name = "other"
  type = "folder"
  pathh = "x"
  [[organisations.mailboxes]]
  name = "third"
  type = "nosuch"
""",
    )
    found = problems(path)
    assert f"{path}:11: organisations[0].mailboxes[1].pathh: unknown key" in found
    assert f"{path}:8: organisations[0].mailboxes[1].path: required key is missing" in found
    assert any(p.startswith(f"{path}:14: organisations[0].mailboxes[2].type: unknown connector 'nosuch'") for p in found)


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
