"""trusted locations: networks authorised at run time, one-time location links, console users' e-mail

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('console_user') as batch:
        batch.add_column(sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True))
    op.create_table('trusted_network',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_cvr', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('network', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('added_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('added_from', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('added_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organisation_cvr', 'network', name='uq_trusted_network')
    )
    op.create_index(op.f('ix_trusted_network_organisation_cvr'), 'trusted_network', ['organisation_cvr'],
                    unique=False)
    op.create_table('location_link',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('network', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('organisations', sa.JSON(), nullable=False),
    sa.Column('requested_from', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('used_at', core.storage.models.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['console_user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_location_link_user_id'), 'location_link', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_location_link_user_id'), table_name='location_link')
    op.drop_table('location_link')
    op.drop_index(op.f('ix_trusted_network_organisation_cvr'), table_name='trusted_network')
    op.drop_table('trusted_network')
    with op.batch_alter_table('console_user') as batch:
        batch.drop_column('email')
