"""`postbud config check`: validate the configuration and say what is wrong."""

from __future__ import annotations

import typer

from core.config import Config
from postbud.cli.common import ConfigOpt, config_of, err, out

app = typer.Typer(no_args_is_help=True, help="Validate the configuration.")


@app.command("check")
def check_cmd(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Validate the configuration and print every problem; exit 1 if there is any."""
    cfg = config_of(ctx, config)
    warnings = _secret_warnings(cfg)
    for warning in warnings:
        err.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    mailboxes = sum(len(o.mailboxes) for o in cfg.organisations)
    out.print(f"{cfg.path}: ok ({len(cfg.organisations)} organisations, {mailboxes} mailboxes)", highlight=False)


def _secret_warnings(cfg: Config) -> list[str]:
    from connectors.registry import is_secret_ref
    from core.config import SecretRef

    warnings = []
    for org in cfg.organisations:
        for mb in org.mailboxes:
            for key, value in mb.connector_settings.items():
                if not is_secret_ref(value):
                    continue
                ref = SecretRef.model_validate(value, context={"base_dir": cfg.base_dir})
                try:
                    ref.reveal()
                except LookupError as exc:
                    warnings.append(f"{org.cvr}/{mb.name}.{key}: {exc} (needed when the mailbox starts)")
    return warnings
