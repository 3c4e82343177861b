"""roster indexes: one district's members newest first (all statuses or one) and by decision time

Replaces ix_member_district_id, whose lookups every new index serves (district_id leads).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index('ix_member_district_created', ['district_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_member_district_status_created', ['district_id', 'status', 'created_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_member_district_decided', ['district_id', 'decided_at', 'id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_member_district_id'))


def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_district_id'), ['district_id'], unique=False)
        batch_op.drop_index('ix_member_district_decided')
        batch_op.drop_index('ix_member_district_status_created')
        batch_op.drop_index('ix_member_district_created')
