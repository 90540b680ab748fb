"""crash safety: acknowledgement intent on message, send start on delivery

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 09:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.storage.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ack_requested_at', core.storage.models.UtcDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('ack_ref', sa.LargeBinary(), nullable=True))

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_started_at', core.storage.models.UtcDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('send_started_at')

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('ack_ref')
        batch_op.drop_column('ack_requested_at')
