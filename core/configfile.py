"""Reading the configuration file: TOML in, a validated `Config` out, or every problem at once.

Each problem names the file, the key path and the line. Mailbox checks the application passes in
(its connectors' settings) are reported the same way.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.config import Config, MailboxConfig
from core.tomlpos import KeyLocator, KeyPath, format_path

ENV_CONFIG = "POSTBUD_CONFIG"
DEFAULT_CONFIG = Path("postbud.toml")


@dataclass(frozen=True)
class ConfigProblem:
    file: Path
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is unusable; `problems` lists every reason."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def default_config_path(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else DEFAULT_CONFIG


# A check of one mailbox, run once the mailbox itself parses (the application checks its connector
# settings: the ground knows no connector). It yields (key path inside the mailbox, message).
MailboxCheck = Callable[[MailboxConfig, Path], Iterable[tuple[KeyPath, str]]]


def load_config(path: Path, *, mailbox_checks: Iterable[MailboxCheck] = ()) -> Config:
    """Read and validate `path`, then run `mailbox_checks`; raises ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(path, None, "", "configuration file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(path, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(match.group(1)) if match else None
        raise ConfigError([ConfigProblem(path, line, "", f"not valid TOML: {exc}")]) from None
    return parse_config(data, path=path, text=text, mailbox_checks=mailbox_checks)


def parse_config(
    data: dict[str, Any], *, path: Path, text: str = "", mailbox_checks: Iterable[MailboxCheck] = ()
) -> Config:
    locator = KeyLocator(text)
    base_dir = path.resolve().parent
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(
            {**data, "path": path, "base_dir": base_dir}, context={"base_dir": base_dir}
        )
    except ValidationError as exc:
        problems.extend(_problems(exc, path, locator))
    checks = tuple(mailbox_checks)
    if checks:
        # From the raw data when the whole failed: an unknown key elsewhere must not hide the
        # mailboxes' own problems until it is fixed.
        mailboxes = _mailboxes(config) if config is not None else _raw_mailboxes(data)
        for (i, j), mailbox in mailboxes:
            prefix: KeyPath = ("organisations", i, "mailboxes", j)
            for check in checks:
                for sub, message in check(mailbox, base_dir):
                    full = prefix + sub
                    problems.append(ConfigProblem(path, locator.line(full), format_path(full), message))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _mailboxes(config: Config) -> list[tuple[tuple[int, int], MailboxConfig]]:
    return [((i, j), mb) for i, org in enumerate(config.organisations) for j, mb in enumerate(org.mailboxes)]


def _raw_mailboxes(data: dict[str, Any]) -> list[tuple[tuple[int, int], MailboxConfig]]:
    """The mailboxes that validate on their own; the others' errors are already reported."""
    found = []
    orgs = data.get("organisations")
    for i, org in enumerate(orgs if isinstance(orgs, list) else []):
        mailboxes = org.get("mailboxes") if isinstance(org, dict) else None
        for j, raw in enumerate(mailboxes if isinstance(mailboxes, list) else []):
            try:
                found.append(((i, j), MailboxConfig.model_validate(raw)))
            except ValidationError:
                continue
    return found


def _problems(exc: ValidationError, path: Path, locator: KeyLocator) -> list[ConfigProblem]:
    out = []
    for error in exc.errors():
        loc: KeyPath = tuple(p for p in error["loc"] if isinstance(p, (str, int)))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        out.append(ConfigProblem(path, locator.line(loc), format_path(loc), message))
    return out
