"""`postbud reply ID --file F`: answer a Digital Post message through the organisation's NgDP mailbox."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from postbud.cli.common import ConfigOpt, OperatorError, OperatorGroup, actor, config_of, out

app = typer.Typer(add_completion=False, cls=OperatorGroup)


@app.command("reply")
def reply_cmd(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="The message to answer.")],
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="The answer (e.g. a PDF).")],
    text: Annotated[Optional[str], typer.Option("--text", help="A short text sent with it.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who replies (default: $POSTBUD_USER or the login).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Reply to a Digital Post message that allows it, through the organisation's NgDP mailbox."""
    from connectors.base import ConnectorError
    from postbud.reply import ReplyRefused, send_reply
    from postbud.runtime import open_store
    from postbud.trace import show_message as find

    cfg = config_of(ctx, config)
    store = open_store(cfg)
    found = find(store, message_id)
    try:
        sent = asyncio.run(send_reply(cfg, store, found["id"], file, text=text, actor=actor(by)))
    except ReplyRefused as exc:
        raise OperatorError(f"reply refused: {exc}") from None
    except ConnectorError as exc:
        raise OperatorError(f"reply not sent ({type(exc).__name__}: {exc}); nothing was sent, try again later") from None
    out.print(f"reply {sent.reply_uuid} sent through {sent.mailbox}", highlight=False)
