"""search and retention: message.purged_at (retention tombstones), indexes for trace search

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:45:57.456804
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import postbud.storage.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_channel_status', ['channel', 'status'], unique=False)
        batch_op.create_index('ix_delivery_recipient', ['recipient'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', postbud.storage.models.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_message_received_at', ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_received_at')
        batch_op.drop_column('purged_at')

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_recipient')
        batch_op.drop_index('ix_delivery_channel_status')
