"""What the `postbud` command modules share: consoles, common options, the config, who acts, times,
tables, the message view, and one error style for every command.

A mistake gets one line on stderr saying what is wrong and what to do (an ambiguous id adds its
candidates, indented): exit 2 for a usage error (an unknown option, a value in the wrong form), 1 for
a failure. A traceback only with `--debug` (anywhere on the line) or POSTBUD_DEBUG=1. Every group is
an `OperatorGroup`, which applies this to whatever its commands raise.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import Exit, TyperException

from core.config import Config
from core.configfile import ConfigError, default_config_path
from core.untrusted import visible
from postbud.configuration import load_config

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from core.storage.db import Store
    from delivery.recipients import RecipientsFile

    out: Console
    err: Console


@cache
def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def __getattr__(name: str) -> Console:
    """`out` and `err`, the consoles, made at their first use: a command that prints nothing (`run`,
    unless its configuration has a problem) does not import rich (20 ms of its start-up)."""
    if name in ("out", "err"):
        return _console(stderr=name == "err")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("-c", "--config", help="Config file (default: $POSTBUD_CONFIG, then ./postbud.toml)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class CliContext:
    """The root command's context object: the config, loaded only when a command needs it."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    def config(self, explicit: Path | None = None) -> Config:
        if explicit is not None:
            return load_or_exit(explicit)
        if self._config is None:
            self._config = load_or_exit(default_config_path(self.config_path))
        return self._config

    def _optional(self) -> Config | None:
        path = default_config_path(self.config_path)
        return self.config() if path.exists() else None

    @property
    def rules_dir(self) -> Path | None:
        config = self._optional()
        return config.rules.directory if config else None

    @property
    def configured(self) -> Config | None:
        return self._optional()

    @property
    def recipients(self) -> object | None:
        config = self._optional()
        if config is None or config.recipients.file is None:
            return None
        path, sandbox = config.recipients.file, config.sandbox
        if not path.exists() and sandbox.enabled and path.resolve().is_relative_to(sandbox.folder.resolve()):
            # A fresh checkout: the sandbox writes its demo recipients at its first start.
            _console(stderr=True).print(f"note: {path} does not exist yet (the sandbox writes it when postbud "
                                        "runs); going on without recipients", highlight=False, markup=False)
            return None
        return recipients_of(config)


def load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            say(str(problem))
        raise typer.Exit(1) from None


def context_of(ctx: typer.Context, explicit: Path | None = None) -> CliContext:
    """The context a command runs in: its own -c if given (so -c works after the sub-command too),
    else the root's."""
    if explicit is not None:
        return CliContext(explicit)
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliContext) else CliContext(None)


def config_of(ctx: typer.Context, explicit: Path | None = None) -> Config:
    """The command's own -c, else the root's -c, else $POSTBUD_CONFIG, else ./postbud.toml."""
    return context_of(ctx, explicit).config()


# JSON escapes C0 controls itself; these it leaves raw, and a terminal would obey them (0x9b is CSI).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def print_json(data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def shown(value: object) -> str:
    """A value a sender may control, for a console line: control characters written out (a terminal
    shows ``\\x1b`` instead of obeying it) and Rich markup escaped (no ``[link=…]`` from a subject)."""
    from rich.markup import escape

    return escape(visible("" if value is None else str(value)))


def cell(value: object) -> Text:
    """As `shown`, for a table cell (a `Text` is never read as markup)."""
    from rich.text import Text

    return Text(visible("" if value is None else str(value)))


def actor(by: str | None = None) -> str:
    """Who does what a command records: --by, else $POSTBUD_USER, else the login name."""
    if by:
        return by
    try:
        return os.environ.get("POSTBUD_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "cli"


USAGE, FAILURE = 2, 1
_debug = [False]  # a list, so the root command can set it for this invocation


def set_debug(wanted: bool) -> None:
    """The root's --debug (or POSTBUD_DEBUG=1): tracebacks for this invocation."""
    _debug[0] = wanted or os.environ.get("POSTBUD_DEBUG") == "1"


class OperatorGroup(TyperGroup):
    """A command group whose commands' errors become one line and an exit code (see the docstring)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exit:
            raise
        except TyperException as exc:  # click's own (typer bundles click): usage errors, abort
            if type(exc).__name__ == "NoArgsIsHelpError" or _debug[0]:
                raise
            code = int(getattr(exc, "exit_code", FAILURE))
            message = exc.format_message() if hasattr(exc, "format_message") else "aborted"
            where = getattr(exc, "ctx", None)
            hint = f"; see `{where.command_path} --help`" if code == USAGE and where is not None else ""
            say(" ".join(message.split()).rstrip(".") + hint)
            raise Exit(code) from None
        except KeyboardInterrupt:
            raise Exit(130) from None
        except Exception as exc:
            if _debug[0]:
                raise
            message, code, more = failure(exc)
            say(" ".join(message.split()))
            for line in more:
                sys.stderr.write(f"  {line}\n")
            raise Exit(code) from None


def failure(exc: Exception) -> tuple[str, int, list[str]]:
    """What an exception means for the operator: the line, the exit code and candidate lines."""
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from core.storage.vault import VaultError
    from delivery.errors import RecipientsFileError
    from postbud.names import UnknownName
    from postbud.trace import MessageNotFound
    from postbud.trace_actions import NotFound
    from rules import RuleErrors

    if isinstance(exc, OperatorError):
        return str(exc), exc.exit_code, []
    if isinstance(exc, (MessageNotFound, NotFound)):
        return str(exc), FAILURE, [f"{i}  {at[:19]}  {title}" for i, at, title in exc.candidates]
    if isinstance(exc, UnknownName):
        return str(exc), USAGE if exc.usage else FAILURE, []
    if isinstance(exc, RecipientsFileError):
        return f"{exc}; fix the recipients file ([recipients] file)", FAILURE, []
    if isinstance(exc, VaultError):
        return f"{exc}; check [encryption] keyring (or $POSTBUD_KEYRING)", FAILURE, []
    if isinstance(exc, RuleErrors):
        more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        first = exc.issues[0] if exc.issues else ""
        return f"the rules do not load: {first}{more}; run `postbud rules check`", FAILURE, []
    if isinstance(exc, (DBAPIError, ArgumentError)):
        cause = getattr(exc, "orig", None) or exc
        return (f"the database cannot be used ({type(cause).__name__}: {str(cause).splitlines()[0]}); check "
                "[database] url (or $POSTBUD_DATABASE_URL)"), FAILURE, []
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}", FAILURE, []
    return f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)", FAILURE, []


class OperatorError(Exception):
    """A mistake or a failure the operator can act on: one line on stderr, no traceback.

    `exit_code` 2 is a usage error (a value in the wrong form), 1 a failure (it names nothing that
    exists, or it could not be done).
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    """One error line: what is wrong and what to do."""
    _console(stderr=True).print(f"error: {visible(message)}", highlight=False, markup=False, soft_wrap=True)


_AGE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str | None, option: str = "--since") -> datetime | None:
    """A --since/--until value: an ISO date/time (UTC unless it says otherwise), or an age like 30d,
    12h, 45m, 2w. Anything else is a usage error naming the forms that work."""
    if not value:
        return None
    age = _AGE.fullmatch(value.strip())
    if age:
        return datetime.now(timezone.utc) - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise OperatorError(f"{option} {value!r} is neither a date (2026-05-01, 2026-05-01T08:30) nor an age "
                            "(30d, 12h, 45m, 2w)", exit_code=2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def recipients_of(config: Config) -> RecipientsFile | None:
    """The configured recipients file, loaded (None when none is configured)."""
    from delivery.recipients import load_recipients

    return load_recipients(config.recipients.file) if config.recipients.file is not None else None


def known_organisation(config: Config, store: Store, typed: str) -> str:
    """For reading: a configured organisation, or one whose messages are still stored after it left
    the configuration; anything else is refused with the candidates."""
    from sqlmodel import select

    from core.storage.models import Organisation
    from postbud.names import UnknownName, organisation

    try:
        return organisation(config, typed)
    except UnknownName:
        with store.read() as session:
            if session.exec(select(Organisation).where(Organisation.cvr == typed.strip())).first() is not None:
                return typed.strip()
        raise


def table(*headers: str, whole: tuple[str, ...] = ("id", "received", "status", "period", "org", "organisation",
                                                  "age", "approval", "channel")) -> Table:
    """A table for 80 columns: no borders, the `whole` columns (ids, times, states) never wrapped, the
    others folded rather than cut (titles get the room left), so nothing is lost to an ellipsis."""
    from rich.table import Table

    grid = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, header_style="bold underline")
    for header in headers:
        if header in whole:
            grid.add_column(header, no_wrap=True)
        else:
            grid.add_column(header, overflow="fold", min_width=min(len(header), 8))
    return grid


def show_message(config: Config, message_id: str, *, as_json: bool, full: bool = False) -> None:
    """Print one message (`trace show`, `queue show`): who received it, the timeline and why in words."""
    from postbud.explain import message_lines
    from postbud.runtime import open_store
    from postbud.trace import show_message as find

    found = find(open_store(config), message_id)
    if as_json:
        print_json(found)
        return
    for line in message_lines(found, full=full):
        # The lines quote titles, senders and reasons as the sender wrote them: shown, never obeyed.
        _console(stderr=False).print(visible(line), highlight=False, markup=False)
