"""recipient approval: the invite → confirm → approve workflow of delivery recipients

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:13:27.189661
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recipient_approval',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_cvr', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('expires_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('invited_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('approved_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('key_fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('key_checked_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('key_expires_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organisation_cvr', 'recipient', name='uq_recipient_approval'),
    sa.UniqueConstraint('token_hash')
    )


def downgrade() -> None:
    op.drop_table('recipient_approval')
