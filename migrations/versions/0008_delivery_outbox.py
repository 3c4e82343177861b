"""delivery: the transactional outbox of codes and notices (written with the change, deleted once sent);
status_check.send_error, as join_attempt has (status codes are sent by the consumer too)

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('code_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_kind_owner', ['kind', 'owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_due_at'), ['due_at'], unique=False)
    with op.batch_alter_table('status_check', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_error', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('status_check', schema=None) as batch_op:
        batch_op.drop_column('send_error')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_due_at'))
        batch_op.drop_index('ix_delivery_kind_owner')
    op.drop_table('delivery')
