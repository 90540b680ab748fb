"""the console's OpenID Connect sign-in: an account's linked identity, sign-ins under way

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.storage.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('console_user', sa.Column('oidc_identity', sqlmodel.sql.sqltypes.AutoString(length=255),
                                            nullable=True))
    op.create_index('ix_console_user_oidc_identity', 'console_user', ['oidc_identity'], unique=True)
    op.create_table('console_oidc_pending',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('verifier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('created_at', core.storage.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('console_oidc_pending')
    op.drop_index('ix_console_user_oidc_identity', table_name='console_user')
    with op.batch_alter_table('console_user') as batch:
        batch.drop_column('oidc_identity')
