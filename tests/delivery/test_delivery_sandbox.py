"""The sandbox end to end: demo keys, the STARTTLS mail server keeping .eml files, and the README recipe."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from delivery.envelope import Cover, build_inner
from delivery.keys import check_pgp_key, check_smime_cert
from delivery.pgp import encrypt_pgp
from sandbox.mailserver import DemoKeys, SandboxMailServer, ensure_demo_recipient
from delivery.smime import encrypt_smime
from delivery.smtp import SmtpSender, SmtpSettings
from core.domain import File

PDF = b"%PDF-1.4\n" + os.urandom(50_000)


def test_demo_recipient_keys_are_made_once_with_private_parts_0600(tmp_path: Path) -> None:
    keys = ensure_demo_recipient(tmp_path / "keys")
    for private in (keys.smime_key, keys.pgp_secret):
        assert private.stat().st_mode & 0o777 == 0o600
    assert check_smime_cert(keys.smime_cert.read_bytes()).valid
    assert check_pgp_key(keys.pgp_public.read_bytes()).valid
    before = {p: p.read_bytes() for p in (keys.smime_cert, keys.pgp_public)}
    again = ensure_demo_recipient(tmp_path / "keys")
    assert again == keys
    assert {p: p.read_bytes() for p in before} == before  # reused, not regenerated


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("gpg")),
                    reason="needs the openssl and gpg command-line tools")
async def test_sandbox_keeps_encrypted_mail_that_the_readme_recipe_decrypts(tmp_path: Path) -> None:
    # GIVEN the sandbox mail server and the demo recipient
    keys = ensure_demo_recipient(tmp_path / "var/sandbox/keys")
    server = SandboxMailServer(tmp_path / "var/sandbox/mail", tmp_path / "var/sandbox/ca")
    await server.start()
    now = dt.datetime.now(dt.UTC)
    inner = build_inner(from_addr="postbud@example.com", to_addrs=["demo@example.invalid"],
                        message_id="<sandbox-1@postbud.example>", date=now,
                        cover=Cover("Skattestyrelsen", "Demo", now, "tt-1"),
                        files=[File("demo.pdf", "application/pdf", PDF)])
    try:
        # WHEN postbud delivers one S/MIME and one PGP/MIME message to it over TLS
        async with SmtpSender(SmtpSettings(host="127.0.0.1", port=server.port,
                                           ca_file=server.ca_file)) as smtp:
            for outer in (encrypt_smime(inner, keys.smime_cert.read_bytes()),
                          encrypt_pgp(inner, keys.pgp_public.read_bytes())):
                await smtp.send(outer, sender="postbud@example.com",
                                recipients=["demo@example.invalid"])
    finally:
        await server.stop()
    # THEN there is one .eml file per message
    stored = sorted((tmp_path / "var/sandbox/mail").glob("*.eml"))
    assert len(stored) == 2
    smime_eml, pgp_eml = stored
    # AND the README's openssl and gpg recipes recover the inner message byte for byte
    smime_out, pgp_out = await asyncio.to_thread(readme_recipes, keys, smime_eml, pgp_eml,
                                                 tmp_path / "gnupg")
    assert smime_out == inner
    assert pgp_out == inner


def readme_recipes(keys: DemoKeys, smime_eml: Path, pgp_eml: Path,
                   home: Path) -> tuple[bytes, bytes]:
    """The commands of delivery/README.md, run as a newcomer would."""
    smime = subprocess.run(["openssl", "cms", "-decrypt", "-in", str(smime_eml),
                            "-recip", str(keys.smime_cert), "-inkey", str(keys.smime_key)],
                           capture_output=True, check=False)
    assert smime.returncode == 0, smime.stderr
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpg", "--batch", "--import", str(keys.pgp_secret)], env=env,
                       capture_output=True, check=True)
        # gpg finds the armored block inside the whole .eml file
        pgp = subprocess.run(["gpg", "--batch", "--decrypt", str(pgp_eml)], env=env,
                             capture_output=True, check=False)
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True,
                       check=False)
    assert pgp.returncode == 0, pgp.stderr
    return smime.stdout, pgp.stdout
