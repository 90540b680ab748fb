"""recipients' own notification settings: on/off and a confirmed separate address

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notification_preference',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_cvr', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('pending_address', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('pending_token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('pending_expires_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organisation_cvr', 'recipient', name='uq_notification_preference'),
    sa.UniqueConstraint('pending_token_hash')
    )


def downgrade() -> None:
    op.drop_table('notification_preference')
