"""The README's shell examples, run as written: after `make run`'s daemon has worked once on
config.example.toml (with the sandbox), every `postbud` line, `ls` and the decryption recipe work.

The commands run in a copy of the checkout's config and rules (a `.venv` link to this one) with the
sandbox's ports moved to free ones, so the test never collides with a running `make run`. `ID` and
`<file>` are the README's placeholders and are filled in; `make` itself and the `curl` of a running
daemon's /metrics are left to the other tests (test_deploy scrapes a running daemon).
"""

from __future__ import annotations

import email
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"ngdp": 18443, "eboks": 18444, "mitdk": 18445, "smtp": 18025, "http": 9464, "post": 18446, "idp": 18447}


def sh_blocks(readme: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL)


def commands(block: str) -> list[str]:
    """One command per line (continuations joined), comments dropped."""
    joined = block.replace("\\\n", " ")
    return [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{cwd / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make run` once: the example config's daemon with the sandbox, until no work is left."""
    if not (ROOT / ".venv" / "bin" / "postbud").exists():
        pytest.skip("no .venv with the postbud command (make venv)")
    folder = tmp_path_factory.mktemp("checkout")
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for default in PORTS.values():
        text = text.replace(str(default), str(free_port()))
    (folder / "config.example.toml").write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "rules", folder / "rules", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (folder / ".venv").symlink_to(ROOT / ".venv")
    ran = sh(".venv/bin/postbud -c config.example.toml run --once", folder)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return folder


@pytest.mark.slow
def test_the_readme_commands_after_make_run(checkout: Path) -> None:
    block = next(b for b in sh_blocks(ROOT / "README.md") if "trace search" in b)
    ran = []
    for command in commands(block):
        if command.startswith("curl"):
            continue
        if " ID" in command:
            found = sh(".venv/bin/postbud -c config.example.toml trace search --json --limit 1", checkout)
            command = command.replace(" ID", " " + re.findall(r'"id": "(\w+)"', found.stdout)[0])
        result = sh(command, checkout)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert result.stdout.strip(), command
        assert "Traceback" not in result.stderr
        ran.append(command.split()[3] if "postbud" in command else command.split()[0])
    assert ran == ["trace", "trace", "ls", "ls"]


@pytest.mark.slow
def test_the_readme_decryption_recipe(checkout: Path) -> None:
    block = next(b for b in sh_blocks(ROOT / "README.md") if "openssl cms" in b)
    smime, pgp = commands(block)[0], commands(block)[1:]
    mails = {p: email.message_from_bytes(p.read_bytes()) for p in (checkout / "var/sandbox/mail").glob("*.eml")}
    cms = next(p for p, m in mails.items() if m.get_content_type() == "application/pkcs7-mime")
    result = sh(smime.replace("<file>", cms.stem), checkout)
    assert result.returncode == 0, result.stderr
    letter = email.message_from_bytes((checkout / "letter.eml").read_bytes())
    assert [p.get_filename() for p in letter.walk() if p.get_filename()]
    if shutil.which("gpg") is None:
        return
    encrypted = next(p for p, m in mails.items() if m.get_content_type() == "multipart/encrypted")
    result = sh("; ".join(pgp).replace("<file>", encrypted.stem), checkout)
    assert result.returncode == 0, result.stderr
    assert b"Content-Type" in (checkout / "letter.eml").read_bytes()


@pytest.mark.parametrize("config", ["", "-c config.example.toml "])
@pytest.mark.slow
def test_the_rules_readme_test_suite_passes_with_and_without_the_example_config(checkout: Path,
                                                                               config: str) -> None:
    (command,) = [c for b in sh_blocks(ROOT / "rules" / "README.md") for c in commands(b) if "test-suite" in c]
    assert command == "postbud rules test-suite rules/examples/tests --rules rules/examples"
    result = sh(command.replace("postbud ", f"postbud {config}", 1), checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "5 passed, 0 failed"


def test_the_examples_are_found() -> None:
    assert any("trace show ID" in b for b in sh_blocks(ROOT / "README.md"))
    assert any("openssl cms" in b for b in sh_blocks(ROOT / "README.md"))
