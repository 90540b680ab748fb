"""the web console: local accounts, server-side sessions, the audit trail

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('organisations', sa.JSON(), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('console_session',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['console_user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_console_session_user_id'), 'console_session', ['user_id'], unique=False)
    op.create_table('audit_event',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('organisation_cvr', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_at', 'audit_event', ['at'], unique=False)
    op.create_index('ix_audit_action_user_at', 'audit_event', ['action', 'username', 'at'], unique=False)
    op.create_index('ix_audit_action_address_at', 'audit_event', ['action', 'address', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_action_address_at', table_name='audit_event')
    op.drop_index('ix_audit_action_user_at', table_name='audit_event')
    op.drop_index('ix_audit_at', table_name='audit_event')
    op.drop_table('audit_event')
    op.drop_index(op.f('ix_console_session_user_id'), table_name='console_session')
    op.drop_table('console_session')
    op.drop_table('console_user')
