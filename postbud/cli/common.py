"""What the `postbud` command modules share: consoles, common options, the config, who acts, time and trace views."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from core.config import Config
from core.configfile import ConfigError, default_config_path
from postbud.configuration import load_config

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

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
    def recipients(self) -> object | None:
        from postbud.runtime import load_recipient_directory

        config = self._optional()
        return load_recipient_directory(config) if config else None


def load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]error[/red] {problem}", highlight=False)
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


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def actor(by: str | None = None) -> str:
    """Who does what a command records: --by, else $POSTBUD_USER, else the login name."""
    if by:
        return by
    try:
        return os.environ.get("POSTBUD_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def parse_time(value: str | None) -> datetime | None:
    """A --since/--until value: an ISO date/time (UTC unless it says otherwise), or an age like 30d / 12h."""
    if not value:
        return None
    if value[-1] in "dh" and value[:-1].isdigit():
        unit = {"d": "days", "h": "hours"}[value[-1]]
        return datetime.now(timezone.utc) - timedelta(**{unit: int(value[:-1])})
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def show_message(config: Config, message_id: str, *, as_json: bool) -> None:
    """Print one message and its timeline, oldest first (`trace show`, `queue show`); exit 1 if unknown."""
    from postbud.runtime import open_store
    from postbud.trace import show

    found = show(open_store(config), message_id)
    if found is None:
        err.print(f"no message {message_id}")
        raise typer.Exit(1)
    if as_json:
        print_json(found)
        return
    out.print(f"[bold]{found['title']}[/bold]  ({found['id']})", highlight=False)
    out.print(f"from {found['sender']} · {found['organisation']}/{found['mailbox']} · status {found['status']}",
              highlight=False)
    for event in found["events"]:
        change = f"{event['from_status'] or ''} → {event['to_status']}" if event["to_status"] else ""
        line = f"{event['at'][:19]}  {event['kind']:<13} {event['actor']:<10} {change}"
        if event["reason"]:
            line += f"  ({event['reason']})"
        out.print(line, highlight=False)
        explanation = event["detail"].get("explanation")
        if explanation:
            out.print(f"    why: {json.dumps(explanation, ensure_ascii=False)}", highlight=False)
