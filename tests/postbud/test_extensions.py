"""Start-up extensions come from the `postbud.extensions` entry points; the sandbox is one of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.config import Config
from postbud import extensions
from postbud.extensions import Extension, ExtensionError, named, running


def test_the_sandbox_is_found_by_its_entry_point_not_by_an_import() -> None:
    found = extensions.discover()
    assert isinstance(found["sandbox"], Extension)
    assert type(found["sandbox"]).__module__ == "sandbox.extension", \
        "the installed entry point is an old one: reinstall (make venv)"


def test_a_daemon_with_the_sandbox_off_does_not_import_the_sandbox() -> None:
    # GIVEN the sandbox installed but not asked for; WHEN the extensions are started as `postbud run` does
    probe = ("import asyncio, sys\n"
             "from core.config import Config\n"
             "from postbud.extensions import running\n"
             "async def main():\n"
             "    async with running(Config()) as started:\n"
             "        assert started == []\n"
             "asyncio.run(main())\n"
             "print(sorted(m for m in sys.modules if m == 'fpdf' or m.startswith('sandbox.')))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # THEN only the entry point's own module was loaded: not the fakes, the demo, or fpdf
    assert done.stdout.split("\n")[0] == "['sandbox.extension']"


async def test_nothing_starts_unless_the_config_asks() -> None:
    async with running(Config()) as started:
        assert started == []


async def test_a_sandbox_asked_for_but_not_installed_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extensions, "discover", lambda: {})
    config = Config.model_validate({"sandbox": {"enabled": True}})
    with pytest.raises(ExtensionError, match="no extension 'sandbox' is installed"):
        async with running(config):
            pass
    with pytest.raises(ExtensionError):
        named("sandbox")
