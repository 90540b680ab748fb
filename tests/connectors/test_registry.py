"""The connector registry: built-ins, plugins from the entry-point group, duplicates refused."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from connectors import registry
from connectors.folder import FolderConnector
from postbud.cli.app import app


def test_builtins_are_listed() -> None:
    found = registry.discover()
    assert found["folder"].factory is FolderConnector


def test_plugin_registers_through_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugin(FolderConnector):
        name = "acme"

    import tests.connectors.test_registry as me

    monkeypatch.setattr(me, "AcmeConnector", Plugin, raising=False)
    found = registry.discover(extra=[("acme", "tests.connectors.test_registry:AcmeConnector")])
    assert found["acme"].factory is Plugin
    assert found["acme"].origin.startswith("plugin")


def test_duplicate_connector_name_is_fatal() -> None:
    with pytest.raises(registry.RegistryError, match="two connectors are named 'folder'"):
        registry.discover(extra=[("folder", "connectors.folder:FolderConnector")])


def test_broken_plugin_names_itself() -> None:
    with pytest.raises(registry.RegistryError, match="'broken'"):
        registry.discover(extra=[("broken", "no.such.module:Thing")])


def test_connectors_list_command() -> None:
    result = CliRunner().invoke(app, ["connectors", "list"])
    assert result.exit_code == 0
    assert "folder" in result.stdout
