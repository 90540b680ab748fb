"""Alembic environment: runs on the connection postbud hands over (never reads an ini file)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import core.storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import core.storage.accounts  # noqa: F401  (the console's tables)
import core.storage.onboarding  # noqa: F401  (the onboarding checklist)
import core.storage.daily_counts  # noqa: F401  (the statistics' roll-up)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through postbud (postbud db upgrade), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
