"""lifecycle: questions to applicants, one appeal, escalations sent back (texts encrypted)

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('appeal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('appealed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('text_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('rejected_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('rejected_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rejected_by_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_id')
    )
    op.create_table('escalation_return',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('returned_by_id', sa.Integer(), nullable=True),
    sa.Column('returned_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('note_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['returned_by_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('escalation_return', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_return_member_id'), ['member_id'], unique=False)

    op.create_table('member_question',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('asked_by_id', sa.Integer(), nullable=True),
    sa.Column('asked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('question_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('answer_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('answered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['asked_by_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('member_question', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_question_member_id'), ['member_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('member_question', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_question_member_id'))

    op.drop_table('member_question')
    with op.batch_alter_table('escalation_return', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_return_member_id'))

    op.drop_table('escalation_return')
    op.drop_table('appeal')
