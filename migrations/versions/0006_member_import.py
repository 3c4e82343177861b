"""member: where the row came from (the join flow, or an import of an existing register)

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'source',
                sa.Enum('join', 'import', name='member_source', native_enum=False, create_constraint=True, length=32),
                nullable=False,
                server_default='join',
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_column('source')
