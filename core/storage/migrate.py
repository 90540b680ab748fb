"""Schema migrations through alembic, applied by `postbud db upgrade` and at every start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION_LINE = re.compile(r"^(revision|down_revision) = (?:'([^']+)'|None)$", re.M)


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


# Any fixed number: instances starting together on one PostgreSQL database migrate one at a time.
_MIGRATION_LOCK = 0x706F737462756401


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and at_head(engine):
        return  # every start: alembic and its scripts are loaded only when there is work
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends; the next instance then finds the schema at head.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def at_head(engine: Engine) -> bool:
    """Whether the database's one revision is the scripts' single head, read without alembic (its
    import and the scripts cost a start about 0.1 s); False whenever that is not plainly so."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((m.group(1), m.group(2)) for m in _REVISION_LINE.finditer(script.read_text(encoding="utf-8")))
        if not found.get("revision"):
            return False  # a script written otherwise: alembic reads it
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        return False
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:  # a new database: no version table yet
        return False
    return current == list(heads)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def pending_model_changes(engine: Engine) -> list[object]:
    """What the models declare that the migrations do not create (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import core.storage.models  # noqa: F401
    import core.storage.accounts  # noqa: F401
    import core.storage.onboarding  # noqa: F401  (the onboarding checklist)
    import core.storage.daily_counts  # noqa: F401

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))
