"""The application's configuration loader checks each mailbox's connector settings after parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.configfile import ConfigError
from postbud.configuration import load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postbud.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


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
