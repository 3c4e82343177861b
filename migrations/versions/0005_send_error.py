"""join attempt: why its last code could not be sent (the send runs after the response)

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('join_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_error', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('join_attempt', schema=None) as batch_op:
        batch_op.drop_column('send_error')
