"""search and retention: message.purged_at (retention tombstones), covering indexes for trace search

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:03:17.615892
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_channel_status', ['channel', 'status', 'created_at', 'message_id'], unique=False)
        batch_op.create_index('ix_delivery_recipient', ['recipient', 'message_id'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', core.storage.models.UtcDateTime(timezone=True), nullable=True))
        batch_op.drop_index(batch_op.f('ix_message_org_received'))
        batch_op.drop_index(batch_op.f('ix_message_mailbox_id'))
        batch_op.create_index('ix_message_org_search', ['organisation_cvr', 'received_at', 'mailbox_id', 'provider', 'status', 'sender_id', 'sender_name', 'title', 'id'], unique=False)
        batch_op.create_index('ix_message_search', ['received_at', 'organisation_cvr', 'mailbox_id', 'provider', 'status', 'sender_id', 'sender_name', 'title', 'id'], unique=False)
        batch_op.create_index('ix_message_id_received', ['id', 'received_at'], unique=False)
        batch_op.create_index('ix_message_mailbox_received', ['mailbox_id', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_mailbox_received')
        batch_op.drop_index('ix_message_id_received')
        batch_op.drop_index('ix_message_search')
        batch_op.drop_index('ix_message_org_search')
        batch_op.create_index(batch_op.f('ix_message_mailbox_id'), ['mailbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_org_received'), ['organisation_cvr', 'received_at'], unique=False)
        batch_op.drop_column('purged_at')

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_recipient')
        batch_op.drop_index('ix_delivery_channel_status')
