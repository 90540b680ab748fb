"""The connector registry: built-ins listed here, third-party ones from the `postbud.connectors` entry points.

A connector is selected in config by its stable name (`type = "ngdp"`). Two connectors with one name
is a fatal error: silently preferring one would make routing depend on install order.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import get_args

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from connectors.base import Connector, ConnectorContext, ConnectorFactory, ConnectorSettings
from core.config import MailboxConfig
from core.settings import SecretRef, TomlValue, is_secret_ref

ENTRY_POINT_GROUP = "postbud.connectors"

BUILTINS: Mapping[str, str] = {
    "folder": "connectors.folder:FolderConnector",
    "ngdp": "connectors.ngdp:NgdpConnector",
    "eboks": "connectors.eboks:EboksConnector",
    "mitdk": "connectors.mitdk:MitdkConnector",
}


class RegistryError(Exception):
    """The set of installed connectors is inconsistent (duplicate or broken plugin)."""


@dataclass(frozen=True)
class RegisteredConnector:
    name: str
    origin: str
    factory: ConnectorFactory


def _load(target: str) -> ConnectorFactory:
    module_name, _, attr = target.partition(":")
    factory: ConnectorFactory = getattr(importlib.import_module(module_name), attr)
    return factory


def discover(extra: Iterable[tuple[str, str]] = ()) -> dict[str, RegisteredConnector]:
    """Every available connector by name. `extra` adds (name, "module:attr") pairs, as entry points do."""
    extra = tuple(extra)
    return dict(_installed()) if not extra else _discover(extra)


@functools.cache
def _installed() -> dict[str, RegisteredConnector]:
    # Asked once per mailbox when a configuration loads: read the entry points once per process.
    return _discover(())


def _discover(extra: tuple[tuple[str, str], ...]) -> dict[str, RegisteredConnector]:
    found: dict[str, RegisteredConnector] = {}

    def add(name: str, origin: str, factory: ConnectorFactory) -> None:
        if name in found:
            raise RegistryError(
                f"two connectors are named {name!r}: {found[name].origin} and {origin}; "
                "uninstall one of them"
            )
        declared = getattr(factory, "name", name)
        if declared != name:
            raise RegistryError(f"connector {origin} registers as {name!r} but calls itself {declared!r}")
        found[name] = RegisteredConnector(name, origin, factory)

    for name, target in BUILTINS.items():
        add(name, f"built-in {target}", _load(target))
    plugins = [(ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for name, target in [*plugins, *extra]:
        try:
            factory = _load(target)
        except Exception as exc:  # a broken plugin must say which one it is
            raise RegistryError(f"connector plugin {name!r} ({target}) cannot be loaded: {exc}") from exc
        add(name, f"plugin {target}", factory)
    return found


def validate_mailbox(mailbox: MailboxConfig, base_dir: Path) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems with a mailbox's connector settings, as (key path inside the mailbox, message)."""
    connectors = discover()
    registered = connectors.get(mailbox.type)
    if registered is None:
        known = ", ".join(sorted(connectors))
        return [(("type",), f"unknown connector {mailbox.type!r} (installed: {known})")]
    settings = mailbox.connector_settings
    secrets = {k for k, v in settings.items() if is_secret_ref(v)}
    # A secret is only revealed when the mailbox starts; until then its value cannot be judged.
    raw: dict[str, TomlValue] = {k: ("secret" if k in secrets else v) for k, v in settings.items()}
    try:
        registered.factory.Settings.model_validate(_anchor_paths(raw, registered.factory.Settings, base_dir))
    except ValidationError as exc:
        return [
            (loc, _message(e))
            for e in exc.errors()
            if (loc := tuple(p for p in e["loc"] if isinstance(p, (str, int)))) and loc[0] not in secrets
        ]
    return []


def _message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":  # worded as the config's own missing keys are
        return "required key is missing"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


def build(mailbox: MailboxConfig, context: ConnectorContext) -> Connector:
    """Construct the mailbox's connector: secrets revealed, relative paths made the config's."""
    registered = discover()[mailbox.type]
    raw: dict[str, TomlValue] = {}
    for key, value in mailbox.connector_settings.items():
        if is_secret_ref(value):
            ref = SecretRef.model_validate(value, context={"base_dir": context.base_dir})
            value = ref.reveal()
        raw[key] = value
    settings = registered.factory.Settings.model_validate(
        _anchor_paths(raw, registered.factory.Settings, context.base_dir)
    )
    return registered.factory(settings, context)


def _anchor_paths(
    raw: dict[str, TomlValue], model: type[ConnectorSettings], base_dir: Path
) -> dict[str, TomlValue]:
    """Relative paths in a connector's settings are the config file's, like every other path."""
    out = dict(raw)
    for name, field in model.model_fields.items():
        value = out.get(name)
        annotation = field.annotation
        is_path = annotation is Path or Path in get_args(annotation)
        if is_path and isinstance(value, str) and not Path(value).expanduser().is_absolute():
            out[name] = str(base_dir / value)
    return out


__all__ = ["RegisteredConnector", "RegistryError", "build", "discover", "validate_mailbox"]
