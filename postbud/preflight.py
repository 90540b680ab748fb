"""Everything `postbud run` will load, checked before it starts: rules, recipients, secrets, keyring.

`config check` prints every problem at once; `run` and a SIGHUP reload refuse a configuration with a
problem that would stop the daemon (a mailbox's own problems only keep that mailbox from starting).
Files the built-in sandbox writes at its start (its secrets, the demo recipients) are not missing yet
when the sandbox is enabled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.settings import SecretRef, is_secret_ref
from core.tomlpos import KeyLocator, KeyPath, format_path
from delivery.errors import RecipientsFileError
from delivery.recipients import RecipientsFile, load_recipients
from rules import RuleErrors, load


@dataclass(frozen=True)
class Problem:
    """One reason the daemon would fail (or a mailbox would not start), where it is written."""

    file: Path
    line: int | None
    path: str
    message: str
    col: int | None = None
    mailbox: str | None = None  # "CVR/name" when only that mailbox is affected

    def __str__(self) -> str:
        where = str(self.file)
        if self.line:
            where += f":{self.line}" + (f":{self.col}" if self.col else "")
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    @property
    def fatal(self) -> bool:
        """The daemon cannot run with it (a mailbox's problem only stops that mailbox)."""
        return self.mailbox is None


class _Report:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.file = config.path or Path("postbud.toml")
        try:
            text = self.file.read_text(encoding="utf-8")
        except OSError:
            text = ""
        self.locator = KeyLocator(text)
        self.problems: list[Problem] = []

    def add(self, key: KeyPath, message: str, *, mailbox: str | None = None) -> None:
        self.problems.append(Problem(self.file, self.locator.line(key), format_path(key), message,
                                     mailbox=mailbox))

    def made_by_sandbox(self, path: Path) -> bool:
        """The enabled sandbox writes this file when it starts, so it need not exist yet."""
        sandbox = self.config.sandbox
        return sandbox.enabled and path.resolve().is_relative_to(sandbox.folder.resolve())

    def secret(self, key: KeyPath, ref: SecretRef, *, mailbox: str | None = None) -> str | None:
        if ref.file is not None and not ref.file.exists() and self.made_by_sandbox(ref.file):
            return None
        try:
            return ref.reveal()
        except LookupError as exc:
            self.add(key, f"{exc}; set it, or the {'mailbox' if mailbox else 'daemon'} cannot start",
                     mailbox=mailbox)
            return None


def check_config(config: Config) -> list[Problem]:
    """Every problem `postbud run` would meet with this configuration, in one pass."""
    report = _Report(config)
    _keyring(report)
    _secrets(report)
    directory = _recipients(report)
    _default_routes(report, directory)
    _rules(report, directory)
    return report.problems


def _keyring(report: _Report) -> None:
    from core.storage.vault import Keyring, VaultError, keyring_path

    enc = report.config.encryption
    try:
        path = keyring_path(enc.keyring)  # $POSTBUD_KEYRING names the file, as the deploy files set it
        if path.exists():
            Keyring.from_json(path.read_text(encoding="utf-8"))
        elif not enc.create_if_missing:
            report.add(("encryption", "keyring"), f"{path} does not exist and create_if_missing "
                       "is false; restore the keyring, or let postbud create a new one")
    except (VaultError, ValueError, KeyError, OSError) as exc:
        report.add(("encryption", "keyring"), f"the keyring cannot be read: {exc}")


def _secrets(report: _Report) -> None:
    config = report.config
    if config.model.enabled and config.model.signing_key is not None:
        report.secret(("model", "signing_key"), config.model.signing_key)
    if config.delivery.smtp_password is not None:
        report.secret(("delivery", "smtp_password"), config.delivery.smtp_password)
    if config.console.enabled and config.console.oidc is not None:
        report.secret(("console", "oidc", "client_secret"), config.console.oidc.client_secret)
    if config.api.enabled:
        from postbud.api import TokenError, TokenTable

        revealed: dict[str, list[str]] = {}
        for cvr, refs in config.api.tokens.items():
            for i, ref in enumerate(refs):
                value = report.secret(("api", "tokens", cvr, i), ref)
                if value is not None:
                    revealed.setdefault(cvr, []).append(value)
        try:
            TokenTable.from_tokens(revealed)
        except TokenError as exc:
            report.add(("api", "tokens"), str(exc))
    for i, org in enumerate(config.organisations):
        for j, mb in enumerate(org.mailboxes):
            if not mb.enabled:
                continue
            for key, setting in mb.connector_settings.items():
                if is_secret_ref(setting):
                    ref = SecretRef.model_validate(setting, context={"base_dir": config.base_dir})
                    report.secret(("organisations", i, "mailboxes", j, key), ref, mailbox=f"{org.cvr}/{mb.name}")
            _connector_files(report, (i, j), org.cvr, mb.name, mb.type, mb.connector_settings)


def _connector_files(report: _Report, at: tuple[int, int], cvr: str, name: str, kind: str,
                     settings: Mapping[str, object]) -> None:
    """Files a connector's settings name (certificates, keys, CA files) exist: the mailbox would
    otherwise fail at its first poll. Folders are left out: a connector creates its own (a drop folder)."""
    from typing import get_args

    from connectors.registry import RegistryError, discover

    try:
        registered = discover().get(kind)
    except RegistryError:
        return  # reported by `connectors list` and the config's own check
    if registered is None:
        return
    for field_name, field in registered.factory.Settings.model_fields.items():
        value = settings.get(field_name)
        is_path = field.annotation is Path or Path in get_args(field.annotation)
        if not isinstance(value, str) or not is_path or not _FILE_FIELD.search(field_name):
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else report.config.base_dir / path
        if not path.exists() and not report.made_by_sandbox(path):
            report.add(("organisations", at[0], "mailboxes", at[1], field_name),
                       f"{path} does not exist; the mailbox cannot start without it", mailbox=f"{cvr}/{name}")


_FILE_FIELD = re.compile(r"file|cert|key")
_WHERE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)


def _recipients(report: _Report) -> RecipientsFile | None:
    path = report.config.recipients.file
    if path is None:
        return None
    if not path.exists():
        if not report.made_by_sandbox(path):
            report.add(("recipients", "file"), f"{path} does not exist; create it (README \"Recipients\") "
                       "or remove the key")
        return None
    try:
        return load_recipients(path)
    except RecipientsFileError as exc:
        # The recipients file names its own line; point there rather than at the config.
        found = _WHERE.match(str(exc))
        if found:
            report.problems.append(Problem(Path(found["file"]), int(found["line"]), "", found["message"]))
        else:
            report.add(("recipients", "file"), str(exc))
        return None


def _default_routes(report: _Report, directory: RecipientsFile | None) -> None:
    if directory is None:
        return
    for i, org in enumerate(report.config.organisations):
        if not org.default_route:
            continue
        known = directory.ids(org.cvr) | set(directory.groups(org.cvr)) \
            if org.cvr in directory.organisations() else set()
        unknown = [r for r in org.default_route if r not in known]
        if unknown:
            report.add(("organisations", i, "default_route"),
                       f"{', '.join(unknown)} not in the recipients file for {org.cvr}"
                       + (f" (known: {', '.join(sorted(known))})" if known else ""))


def _rules(report: _Report, directory: RecipientsFile | None) -> None:
    settings = report.config.rules
    if settings.directory is None:
        return
    if not settings.directory.is_dir():
        report.add(("rules", "directory"), f"{settings.directory} is not a folder; create it or fix the path")
        return
    try:
        load(settings.directory, directory, regex_timeout=settings.regex_timeout_seconds,
             budget=settings.budget_seconds)
    except RuleErrors as exc:
        for issue in exc.issues:
            report.problems.append(Problem(Path(issue.file), issue.line, "", issue.message, col=issue.col))
