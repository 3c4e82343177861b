"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 02:53:10.208215
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('district',
    sa.Column('qr_version', sa.Integer(), nullable=False),
    sa.Column('qr_issued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('qr_revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('member_seq', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('district', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_district_code'), ['code'], unique=True)

    op.create_table('place_stat',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('place_kind', sa.Enum('district', 'workplace', name='place_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('qr_version', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('scans', sa.Integer(), nullable=False),
    sa.Column('forms', sa.Integer(), nullable=False),
    sa.Column('verified', sa.Integer(), nullable=False),
    sa.Column('joins', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('place_kind', 'place_id', 'qr_version', 'day')
    )
    with op.batch_alter_table('place_stat', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_place_stat_place_id'), ['place_id'], unique=False)

    op.create_table('sms_opt_out',
    sa.Column('phone_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('phone_index')
    )
    op.create_table('user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('role', sa.Enum('admin', 'official', 'organizer', name='role', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('session_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_login_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_email'), ['email'], unique=True)

    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('target_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('target_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)

    op.create_table('user_district',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'district_id')
    )
    with op.batch_alter_table('user_district', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_district_district_id'), ['district_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_district_user_id'), ['user_id'], unique=False)

    op.create_table('workplace',
    sa.Column('qr_version', sa.Integer(), nullable=False),
    sa.Column('qr_issued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('qr_revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('delivery_station', 'rest_station', 'hub', 'other', name='workplace_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('workplace', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workplace_code'), ['code'], unique=True)
        batch_op.create_index(batch_op.f('ix_workplace_district_id'), ['district_id'], unique=False)

    op.create_table('member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('workplace_id', sa.Integer(), nullable=True),
    sa.Column('name_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('phone_last4_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('platform', sa.Enum('meituan', 'eleme', 'didi', 'huolala', 'shansong', 'sf_intra_city', 'other', name='platform', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('status', sa.Enum('pending', 'approved', 'rejected', name='member_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('consent_version', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('consent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('source_kind', sa.Enum('district', 'workplace', name='place_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('source_qr_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('verified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('reject_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('member_number', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], ),
    sa.ForeignKeyConstraint(['workplace_id'], ['workplace.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_number'),
    sa.UniqueConstraint('phone_index')
    )
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_decided_at'), ['decided_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_district_id'), ['district_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_phone_last4_index'), ['phone_last4_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_workplace_id'), ['workplace_id'], unique=False)

    op.create_table('join_attempt',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('form_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('workplace_id', sa.Integer(), nullable=True),
    sa.Column('source_kind', sa.Enum('district', 'workplace', name='place_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('source_qr_version', sa.Integer(), nullable=False),
    sa.Column('name_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('platform', sa.Enum('meituan', 'eleme', 'didi', 'huolala', 'shansong', 'sf_intra_city', 'other', name='platform', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('consent_version', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('consent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('code_sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('code_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('code_tries', sa.Integer(), nullable=False),
    sa.Column('sends', sa.Integer(), nullable=False),
    sa.Column('verified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workplace_id'], ['workplace.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('form_key')
    )
    with op.batch_alter_table('join_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_join_attempt_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_join_attempt_district_id'), ['district_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_join_attempt_phone_index'), ['phone_index'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('join_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_join_attempt_phone_index'))
        batch_op.drop_index(batch_op.f('ix_join_attempt_district_id'))
        batch_op.drop_index(batch_op.f('ix_join_attempt_created_at'))

    op.drop_table('join_attempt')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_workplace_id'))
        batch_op.drop_index(batch_op.f('ix_member_phone_last4_index'))
        batch_op.drop_index(batch_op.f('ix_member_district_id'))
        batch_op.drop_index(batch_op.f('ix_member_decided_at'))
        batch_op.drop_index(batch_op.f('ix_member_created_at'))

    op.drop_table('member')
    with op.batch_alter_table('workplace', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workplace_district_id'))
        batch_op.drop_index(batch_op.f('ix_workplace_code'))

    op.drop_table('workplace')
    with op.batch_alter_table('user_district', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_district_user_id'))
        batch_op.drop_index(batch_op.f('ix_user_district_district_id'))

    op.drop_table('user_district')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))
        batch_op.drop_index(batch_op.f('ix_audit_event_action'))

    op.drop_table('audit_event')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_user_id'))

    op.drop_table('api_token')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_email'))

    op.drop_table('user')
    op.drop_table('sms_opt_out')
    with op.batch_alter_table('place_stat', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_place_stat_place_id'))

    op.drop_table('place_stat')
    with op.batch_alter_table('district', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_district_code'))

    op.drop_table('district')
