"""Start-up extensions come from the `postbud.extensions` entry points; the sandbox is one of them."""

from __future__ import annotations

import pytest

from core.config import Config
from postbud import extensions
from postbud.extensions import Extension, ExtensionError, named, running


def test_the_sandbox_is_found_by_its_entry_point_not_by_an_import() -> None:
    found = extensions.discover()
    assert isinstance(found["sandbox"], Extension)
    assert type(found["sandbox"]).__module__ == "sandbox.demo"


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
