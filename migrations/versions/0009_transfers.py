"""transfer: an approved member's move to another district, decided once by the receiving one

Revision ID: 0009
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0009'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('transfer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('from_district_id', sa.Integer(), nullable=False),
    sa.Column('to_district_id', sa.Integer(), nullable=False),
    sa.Column('to_workplace_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'approved', 'rejected', name='transfer_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('open_member_id', sa.Integer(), nullable=True),
    sa.Column('started_by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('reject_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('from_member_number', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('to_member_number', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['from_district_id'], ['district.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['to_district_id'], ['district.id'], ),
    sa.ForeignKeyConstraint(['to_workplace_id'], ['workplace.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('open_member_id')
    )
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_from_district_id'), ['from_district_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_transfer_to_status_created', ['to_district_id', 'status', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.drop_index('ix_transfer_to_status_created')
        batch_op.drop_index(batch_op.f('ix_transfer_member_id'))
        batch_op.drop_index(batch_op.f('ix_transfer_from_district_id'))

    op.drop_table('transfer')
