"""Every start checks the schema: at head it does so without loading alembic; behind, it migrates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine

from core.storage import migrate


def test_a_database_at_head_is_checked_without_alembic(tmp_path: Path) -> None:
    # GIVEN a database migrated to head
    url = f"sqlite:///{tmp_path / 'postbud.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    # WHEN a new process upgrades it again (as every start does)
    probe = ("import sys\nfrom sqlalchemy import create_engine\nfrom core.storage import migrate\n"
             f"migrate.upgrade(create_engine({url!r}))\nprint('alembic' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # THEN alembic was not even imported, and the database is still at head
    assert done.stdout.strip() == "False"
    assert migrate.current_revision(create_engine(url)) == migrate.head_revision()


def test_a_database_behind_is_migrated_to_head(tmp_path: Path) -> None:
    # GIVEN a database one revision behind head, and one with no schema at all
    behind = create_engine(f"sqlite:///{tmp_path / 'behind.db'}")
    previous = str(int(migrate.head_revision()) - 1).zfill(4)
    migrate.upgrade(behind, previous)
    empty = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert not migrate.at_head(behind) and not migrate.at_head(empty)
    # WHEN each is upgraded THEN each reaches head
    for engine in (behind, empty):
        migrate.upgrade(engine)
        assert migrate.at_head(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        engine.dispose()
