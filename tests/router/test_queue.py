"""The manual queue: held messages listed oldest first, assigned by fuzzy name, never by guess."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postbud.cli.app import app
from core.config import Config
from postbud.runtime import open_store
from postbud.service import serve
from router.queue import resolve_recipient
from tests.collector.test_folder_collection import EML, drop
from tests.conftest import MakeConfig

RECIPIENTS = """
[org.12345678]
default_channel = "email"

[org.12345678.recipients.jens-hansen]
name = "Jens Hansen"
aliases = ["JH"]
email = "jens@test.dk"

[org.12345678.recipients.jens-moller]
name = "Jens Møller"
email = "jm@test.dk"

[org.12345678.recipients.finance]
name = "Økonomi"
aliases = ["Bogholderiet", "Finance"]
email = "oko@test.dk"
"""

NAMES = {"jens-hansen": ["Jens Hansen", "JH"], "jens-moller": ["Jens Møller"],
         "finance": ["Økonomi", "Bogholderiet", "Finance"]}

runner = CliRunner()


def held_config(make_config: MakeConfig, tmp_path: Path) -> Config:
    (tmp_path / "recipients.toml").write_text(RECIPIENTS, encoding="utf-8")
    config = make_config(extra_org="", extra='[recipients]\nfile = "recipients.toml"')
    drop(config.base_dir, "a.eml", EML)
    asyncio.run(serve(config, once=True))
    return config


def approve_by_hand(config: Config, rid: str) -> None:
    """An approved recipient, as `recipients approve` leaves it (these test recipients have no keys)."""
    from core.storage.models import RecipientApproval

    with open_store(config).transaction() as session:
        session.add(RecipientApproval(organisation_cvr="12345678", recipient=rid, status="approved"))


def test_held_message_is_listed_and_assigned_by_fuzzy_name(make_config: MakeConfig, tmp_path: Path) -> None:
    config = held_config(make_config, tmp_path)
    listed = runner.invoke(app, ["-c", str(config.path), "queue", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (item,) = json.loads(listed.stdout)
    assert item["organisation"] == "12345678" and item["reason"]
    assert item["age_seconds"] >= 0

    # an unapproved recipient would bounce the letter back to held: refused, nothing changes
    refused = runner.invoke(app, ["-c", str(config.path), "queue", "assign", item["id"][:10], "bogholderi"])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: finance of 12345678 is not approved (never invited)")
    approve_by_hand(config, "finance")
    assigned = runner.invoke(app, ["-c", str(config.path), "queue", "assign", item["id"][:10], "bogholderi",
                                   "--by", "mette"])
    assert assigned.exit_code == 0, assigned.output
    shown = json.loads(runner.invoke(app, ["-c", str(config.path), "trace", "show", item["id"], "--json"]).stdout)
    assert shown["status"] == "routed"
    last = shown["events"][-1]
    assert (last["kind"], last["actor"], last["to_status"]) == ("assigned", "mette", "routed")
    assert shown["decisions"][-1]["decided_by"] == "hand"
    assert shown["decisions"][-1]["recipients"] == ["finance"]
    again = runner.invoke(app, ["-c", str(config.path), "queue", "list", "--json"])
    assert json.loads(again.stdout) == []


def test_an_ambiguous_name_lists_candidates_instead_of_guessing(make_config: MakeConfig, tmp_path: Path) -> None:
    config = held_config(make_config, tmp_path)
    (item,) = json.loads(runner.invoke(app, ["-c", str(config.path), "queue", "list", "--json"]).stdout)
    result = runner.invoke(app, ["-c", str(config.path), "queue", "assign", item["id"], "Jens"])
    assert result.exit_code == 1
    assert "jens-hansen" in result.stderr and "jens-moller" in result.stderr
    still = json.loads(runner.invoke(app, ["-c", str(config.path), "queue", "list", "--json"]).stdout)
    assert len(still) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [("finance", "finance"), ("JH", "jens-hansen"), ("Jens Moller", "jens-moller"), ("okonomi", "finance")],
)
def test_resolve_recipient(query: str, expected: str) -> None:
    assert resolve_recipient(query, NAMES).recipient == expected


def test_resolve_recipient_refuses_to_guess_between_two_jens() -> None:
    resolution = resolve_recipient("Jens", NAMES)
    assert resolution.recipient is None
    assert {rid for rid, _, _ in resolution.candidates} >= {"jens-hansen", "jens-moller"}
