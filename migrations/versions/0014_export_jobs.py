"""export_job: roster exports prepared by the consumer (a row per job, its progress and its file)

Revision ID: 0014
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0014'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'export_job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.JSON(), nullable=True),
        sa.Column('filters_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('filter_shape', sa.JSON(), nullable=False),
        sa.Column('layout', sa.JSON(), nullable=False),
        sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('rows_done', sa.Integer(), nullable=False),
        sa.Column('rows_total', sa.Integer(), nullable=True),
        sa.Column('file_path', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('export_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_job_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_job_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('export_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_export_job_user_id'))
        batch_op.drop_index(batch_op.f('ix_export_job_due_at'))
    op.drop_table('export_job')
