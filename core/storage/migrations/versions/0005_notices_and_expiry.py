"""notices outbox; purged letters that never reached an outcome become `expired`

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 09:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notice',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('organisation_cvr', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('lease_expires_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index('ix_notice_status_next', 'notice', ['status', 'next_attempt_at'], unique=False)
    # Letters purged before this migration that never reached an outcome sat in the queue and the
    # waiting counts for ever; they are gone, and say so now.
    op.execute(
        "UPDATE message SET status = 'expired' WHERE purged_at IS NOT NULL "
        "AND status IN ('collected', 'routed', 'held', 'delivering')"
    )


def downgrade() -> None:
    op.execute("UPDATE message SET status = 'held' WHERE status = 'expired'")
    op.drop_index('ix_notice_status_next', table_name='notice')
    op.drop_table('notice')
