"""the onboarding checklist: a recipient's uploaded or issued key and the test letter's code

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recipient_onboarding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_cvr', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key_kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('key_source', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('key_data', sa.LargeBinary(), nullable=True),
    sa.Column('key_fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('key_expires_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('key_provided_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('test_code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('test_sent_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('test_confirmed_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('updated_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organisation_cvr', 'recipient', name='uq_recipient_onboarding')
    )


def downgrade() -> None:
    op.drop_table('recipient_onboarding')
