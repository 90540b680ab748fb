"""The daemon starts with the deploy files' own environment, stops on SIGTERM in time, and keeps its files private."""

from __future__ import annotations

import codecs
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.collector.test_folder_collection import EML
from tests.postbud.test_daemon import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The unit's TimeoutStopSec: after it systemd kills the daemon, losing the chance to release leases.
TIMEOUT_STOP_SEC = int(re.findall(r"^TimeoutStopSec=(\d+)", (DEPLOY / "systemd" / "postbud.service").read_text(),
                                  flags=re.MULTILINE)[0])
# A Digital Post letter whose DOCTYPE, in UTF-16, names a device that blocks whoever opens it.
PTMX = codecs.BOM_UTF16_LE + (
    '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE memo:Message SYSTEM "/dev/ptmx">\n'
    '<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.1"/>'
).encode("utf-16-le")


def unit_environment() -> dict[str, str]:
    text = (DEPLOY / "systemd" / "postbud.service").read_text()
    return dict(line.split("=", 1) for line in re.findall(r"^Environment=(\S+)$", text, flags=re.MULTILINE))


def docker_environment() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text()
    final_stage = text.rsplit("\nFROM ", 1)[-1]
    blocks = re.findall(r"^ENV (.+?)(?<!\\)\n", final_stage, flags=re.MULTILINE | re.DOTALL)
    pairs = re.findall(r"(\w+)=(\S+)", " ".join(blocks).replace("\\\n", " "))
    return {key: value for key, value in pairs if key.startswith("POSTBUD_")}


@pytest.mark.parametrize("environment", [unit_environment, docker_environment], ids=["systemd", "docker"])
def test_daemon_runs_with_the_deploy_environment_and_stops_in_time(
    tmp_path: Path, environment: object
) -> None:
    assert callable(environment)
    deploy_env: dict[str, str] = {
        key: value.replace("/var/lib/postbud", str(tmp_path / "state")).replace("/etc/postbud", str(tmp_path / "etc"))
        for key, value in environment().items()
    }
    assert deploy_env["POSTBUD_KEYRING"].endswith("keyring.json")  # the deploy files give a path
    port = free_port()
    config = Path(deploy_env["POSTBUD_CONFIG"])
    config.parent.mkdir(parents=True)
    drop = tmp_path / "state" / "drop"
    config.write_text(
        f'[http]\nlisten = "127.0.0.1:{port}"\n[model]\nenabled = false\n'
        '[[organisations]]\ncvr = "12345678"\nname = "Test ApS"\ndefault_route = ["reception"]\n'
        f'  [[organisations.mailboxes]]\n  name = "drop"\n  type = "folder"\n  path = "{drop}"\n  settle_seconds = 0\n',
        encoding="utf-8",
    )
    drop.mkdir(parents=True)
    (drop / "1-ptmx.xml").write_bytes(PTMX)
    (drop / "2-good.eml").write_bytes(EML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTBUD_")} | deploy_env
    if "POSTBUD_DATABASE_URL" not in env:  # the image's config names the database under /var/lib/postbud
        env["POSTBUD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'state' / 'postbud.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "postbud", "run"], env=env, cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.umask(0o022))
    try:
        # Each file is deleted from the drop folder once it is stored (collected or quarantined).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if not (drop / "1-ptmx.xml").exists() and not (drop / "2-good.eml").exists():
                break
            time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()[1]
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        assert not (drop / "2-good.eml").exists(), "the good letter behind the hostile one was not collected"
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=TIMEOUT_STOP_SEC)
        assert time.monotonic() - stopped < TIMEOUT_STOP_SEC
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    keyring = Path(deploy_env["POSTBUD_KEYRING"])
    assert keyring.is_file() and stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert stat.S_IMODE(keyring.parent.stat().st_mode) == 0o700
    database = Path(env["POSTBUD_DATABASE_URL"].removeprefix("sqlite:///"))
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_a_stop_that_hangs_is_forced_to_exit_within_the_timeout() -> None:
    # A thread stuck in C code (as the parser was on /dev/ptmx) keeps a Python process alive for ever;
    # the daemon's last resort after SIGTERM ends it anyway.
    script = (
        "import threading, time\n"
        "from postbud.daemon import _force_exit_after\n"
        "threading.Thread(target=lambda: time.sleep(3600)).start()  # not a daemon thread: blocks exit\n"
        "_force_exit_after(1.0)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert time.monotonic() - started < 15
    assert "exiting now" in done.stderr
