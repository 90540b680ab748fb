"""`postbud sandbox`: the built-in fake providers and mail server, stand-alone until Ctrl-C."""

from __future__ import annotations

import asyncio

import typer

from postbud.cli.common import ConfigOpt, OperatorError, OperatorGroup, config_of, out

app = typer.Typer(add_completion=False, cls=OperatorGroup)


@app.command("sandbox")
def sandbox_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
) -> None:
    """Run the built-in fake providers stand-alone (with the config's sandbox settings) until Ctrl-C."""
    from postbud.extensions import ExtensionError, named

    cfg = config_of(ctx, config)
    try:
        extension = named("sandbox")
    except ExtensionError as exc:
        raise OperatorError(f"{exc}") from None

    async def serve() -> None:
        handle = await extension.start(cfg)
        try:
            for line in handle.describe():
                out.print(line, highlight=False)
            await asyncio.Event().wait()
        finally:
            await handle.aclose()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
