"""`postbud db upgrade`: bring the database schema up to date."""

from __future__ import annotations

import typer

from postbud.cli.common import ConfigOpt, OperatorGroup, config_of, out

app = typer.Typer(no_args_is_help=True, help="Database schema.", cls=OperatorGroup)


@app.command("upgrade")
def upgrade_cmd(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Apply every pending schema migration."""
    from core.storage import migrate
    from core.storage.db import make_engine

    cfg = config_of(ctx, config)
    engine = make_engine(cfg.database_url)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    out.print(f"database at revision {after}" + ("" if before == after else f" (was {before})"))
