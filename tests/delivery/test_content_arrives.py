"""Every official MeMo sample reaches its recipient inside the encryption: decrypted with real openssl
and gpg, the delivery holds the sample's text (NemSMS, notices) or its files."""

from __future__ import annotations

import datetime as dt
import email
import os
import shutil
import subprocess
from collections.abc import Iterator
from email.message import Message
from email.policy import default
from pathlib import Path

import pytest

from connectors.memo import parse_memo
from core.domain import NormalizedMessage
from delivery.compose import encrypted_email
from delivery.recipients import Recipient
from sandbox.mailserver import DemoKeys, ensure_demo_recipient

pytestmark = pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("gpg")),
                                reason="needs the openssl and gpg command-line tools")

SAMPLES = [f"v{v}/{name}" for v in ("1.1", "1.2") for name in (
    "MeMo_Minimum_Example.xml", "MeMo_Full_Example.xml", "MeMo_NemSMS.xml", "MeMo_with_attachment.xml")]
RECEIVED = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> DemoKeys:
    return ensure_demo_recipient(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def gnupg(tmp_path_factory: pytest.TempPathFactory, keys: DemoKeys) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--import", str(keys.pgp_secret)], env=env, capture_output=True, check=True)
    yield env
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)


def _deliver(message: NormalizedMessage, kind: str, keys: DemoKeys) -> bytes:
    key_path = keys.smime_cert if kind == "smime" else keys.pgp_public
    recipient = Recipient(id="finance", name="Økonomi", email="finance@example.dk",
                          **{"smime_cert" if kind == "smime" else "pgp_key": key_path})
    return bytes(encrypted_email(message, recipient, key=key_path.read_bytes(), from_addr="postbud@example.dk",
                                 message_id="<postbud.t1@example.dk>", trace_id="tt-1", received_at=RECEIVED))


def _decrypt(wire: bytes, kind: str, keys: DemoKeys, env: dict[str, str]) -> bytes:
    if kind == "smime":
        done = subprocess.run(["openssl", "cms", "-decrypt", "-recip", str(keys.smime_cert),
                               "-inkey", str(keys.smime_key)], input=wire, capture_output=True, check=False)
    else:
        done = subprocess.run(["gpg", "--batch", "--decrypt"], input=wire, env=env, capture_output=True,
                              check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _parts(inner: bytes) -> tuple[str, dict[str, bytes]]:
    parsed: Message = email.message_from_bytes(inner, policy=default)
    text, files = "", {}
    for part in parsed.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        if part.get_filename():
            files[part.get_filename() or ""] = payload
        else:
            text += payload.decode("utf-8")
    return text, files


@pytest.mark.parametrize("kind", ["smime", "pgp"])
@pytest.mark.parametrize("sample", SAMPLES)
def test_the_decrypted_delivery_holds_the_samples_text_or_files(
    shared_dir: Path, sample: str, kind: str, keys: DemoKeys, gnupg: dict[str, str]
) -> None:
    # GIVEN an official MeMo sample as the connectors parse it
    message = parse_memo((shared_dir / "memo" / sample).read_bytes())
    # WHEN it is delivered encrypted and the recipient decrypts it with the standard tool
    text, files = _parts(_decrypt(_deliver(message, kind, keys), kind, keys, gnupg))
    # THEN every file arrives byte for byte, and text no file holds is in the note
    assert files == {f.name: f.content for f in message.files()}
    if message.notification:
        assert message.notification.strip() in text
    if not message.files():
        assert message.text.strip() in text
    assert message.files() or message.notification, "a sample with neither text nor files"


def test_a_notice_without_documents_arrives_with_its_deadline(keys: DemoKeys, gnupg: dict[str, str]) -> None:
    from core.domain import MessageType, Party

    notice = NormalizedMessage(
        message_id="n1", message_type=MessageType.DIGITALPOST, title="Påmindelse",
        sender=Party("29188548", "CVR", "Skattestyrelsen"), recipient=Party("12345678", "CVR"), format="memo-1.2",
        notification="Husk at indberette moms. Frist 24. januar 2025", text="Husk at indberette moms. Frist 24. januar 2025")
    text, files = _parts(_decrypt(_deliver(notice, "smime", keys), "smime", keys, gnupg))
    assert "Frist 24. januar 2025" in text and files == {}
    assert "attached" not in text
