"""`postbud sandbox`: the built-in fake providers and mail server, stand-alone until Ctrl-C."""

from __future__ import annotations

import asyncio

import typer

from postbud.cli.common import ConfigOpt, config_of, out

app = typer.Typer(add_completion=False)


@app.command("sandbox")
def sandbox_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
) -> None:
    """Run the built-in fake providers stand-alone (with the config's sandbox settings) until Ctrl-C."""
    from sandbox.demo import start_sandbox

    cfg = config_of(ctx, config)

    async def serve() -> None:
        handle = await start_sandbox(cfg)
        try:
            for name, endpoint in handle.providers.endpoints.items():
                out.print(f"{name:<6} {endpoint.base_url}", highlight=False)
            out.print(f"smtp   127.0.0.1:{handle.mail.port} (STARTTLS), mail kept in {handle.mail.mail_dir}",
                      highlight=False)
            out.print(f"CA {handle.providers.ca_path}; credentials in {cfg.sandbox.folder / 'secrets'}",
                      highlight=False)
            await asyncio.Event().wait()
        finally:
            await handle.aclose()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
