"""The approved-recipients file: lookups, group expansion, and errors that point at the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.errors import RecipientsFileError
from delivery.recipients import Channel, KeyKind, UnknownRecipient, load_recipients

GOOD = """\
# approved recipients
[org.12345678]
default_channel = "email"

[org.12345678.recipients.alice]
name = "Alice Jensen"
aliases = ["AJ", "Bogholderiet"]
email = "alice@example.com"
smime_cert = "keys/alice.pem"

[org.12345678.recipients.bob]
name = "Bob Hansen"
email = "bob@example.com"
channel = "email"
pgp_key = "/etc/postbud/bob.asc"

[org.12345678.recipients.erp]
name = "ERP"
channel = "webhook"
pgp_key = "keys/erp.asc"
webhook = { url = "https://erp.example/hook", secret = { env = "POSTBUD_ERP_SECRET" } }

[org.12345678.groups]
board = ["alice", "bob"]
everyone = ["bob", "alice", "erp"]

[org.87654321.recipients.carl]
name = "Carl"
email = "carl@example.org"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipients.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_directory_lookups(tmp_path: Path) -> None:
    d = load_recipients(write(tmp_path, GOOD))
    assert d.ids("12345678") == {"alice", "bob", "erp", "board", "everyone"}
    assert d.ids("99999999") == set()
    assert d.groups("12345678") == {"board": ("alice", "bob"), "everyone": ("bob", "alice", "erp")}
    assert d.names("12345678")["alice"] == ["Alice Jensen", "AJ", "Bogholderiet"]
    alice = d.get("12345678", "alice")
    assert alice.email == "alice@example.com"
    assert alice.key_kind is KeyKind.SMIME
    assert alice.smime_cert == (tmp_path / "keys" / "alice.pem").resolve()  # relative to the file
    assert d.get("12345678", "bob").pgp_key == Path("/etc/postbud/bob.asc")
    erp = d.get("12345678", "erp")
    assert erp.webhook is not None and erp.webhook.secret.env == "POSTBUD_ERP_SECRET"
    assert d.get("87654321", "carl").key_kind is None


def test_expand_groups_deduplicates_in_order(tmp_path: Path) -> None:
    d = load_recipients(write(tmp_path, GOOD))
    assert [r.id for r in d.expand("12345678", ["board", "erp", "alice"])] == ["alice", "bob", "erp"]
    assert [r.id for r in d.expand("12345678", ["everyone"])] == ["bob", "alice", "erp"]
    with pytest.raises(UnknownRecipient):
        d.expand("12345678", ["mallory"])
    with pytest.raises(UnknownRecipient):
        d.get("87654321", "alice")  # ids are per organisation


def test_channel_falls_back_to_the_organisation_default(tmp_path: Path) -> None:
    d = load_recipients(write(tmp_path, GOOD))
    assert d.channel("12345678", "erp") is Channel.WEBHOOK
    assert d.channel("12345678", "alice") is Channel.EMAIL  # no own preference
    assert d.channel("12345678", "erp", enabled={Channel.EMAIL}) is Channel.EMAIL


def test_models_are_frozen(tmp_path: Path) -> None:
    alice = load_recipients(write(tmp_path, GOOD)).get("12345678", "alice")
    with pytest.raises(ValueError):
        alice.email = "evil@example.com"


@pytest.mark.parametrize(
    ("replace", "by", "where"),
    [
        ('email = "bob@example.com"', 'email = "bob@example.com"\nemial = "x"',
         ":14: org.12345678.recipients.bob.emial"),
        ('name = "Carl"', 'name = ""', ":28: org.87654321.recipients.carl.name"),
        ('url = "https://erp.example/hook"', 'url = "http://erp.example/hook"',
         ":21: org.12345678.recipients.erp.webhook.url"),
        ('board = ["alice", "bob"]', 'board = ["alice", "mallory"]',
         ":24: org.12345678.groups.board"),
        ("[org.87654321.recipients.carl]", "[org.8765432.recipients.carl]", ":27: org.8765432"),
        ('channel = "email"\npgp_key', 'channel = "fax"\npgp_key',
         ":14: org.12345678.recipients.bob.channel"),
        ('[org.12345678.recipients.erp]\nname = "ERP"\nchannel = "webhook"',
         '[org.12345678.recipients.erp]\nname = "ERP"\nchannel = "email"',
         ":17: org.12345678.recipients.erp"),
    ],
)
def test_errors_name_file_key_and_line(tmp_path: Path, replace: str, by: str, where: str) -> None:
    assert replace in GOOD
    path = write(tmp_path, GOOD.replace(replace, by, 1))
    with pytest.raises(RecipientsFileError) as caught:
        load_recipients(path)
    assert str(caught.value).startswith(f"{path}{where}")


def test_invalid_toml_and_missing_file_are_typed(tmp_path: Path) -> None:
    with pytest.raises(RecipientsFileError, match="not valid TOML"):
        load_recipients(write(tmp_path, "[org\n"))
    with pytest.raises(RecipientsFileError, match="cannot read"):
        load_recipients(tmp_path / "absent.toml")
