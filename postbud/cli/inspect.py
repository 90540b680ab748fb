"""`postbud inspect FILE`: parse one message file as the connectors do and print the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from postbud.cli.common import ConfigOpt, JsonOpt, OperatorError, OperatorGroup, out, print_json, shown

app = typer.Typer(add_completion=False, cls=OperatorGroup)


@app.command("inspect")
def inspect_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A MeMo .xml or .eml file.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Parse one message file exactly as the connectors do and print the normalized message."""
    from connectors.base import PermanentError
    from connectors.files import parse_message_file

    try:
        message = parse_message_file(file.read_bytes(), file.name)
    except PermanentError as exc:
        raise OperatorError(f"{file} is not a message postbud can read: {exc}") from None
    data = message.to_json()
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{shown(message.title)}[/bold]", highlight=False)
    for key in ("message_type", "message_id", "format", "sent_at", "sender", "recipient", "attention", "flags"):
        value = data[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, False, ""))
        out.print(f"  {key:<13} {shown(value)}", highlight=False)
    for doc in message.documents:
        for f in doc.files:
            out.print(f"  {doc.kind.value:<13} {shown(f.name)} ({shown(f.media_type)}, {f.size} bytes)",
                      highlight=False)
    lines = [line for line in message.text.splitlines() if line.strip()][:8]
    if lines:
        out.print("  text:", highlight=False)
        for line in lines:
            out.print(f"    {shown(line)}", highlight=False)
