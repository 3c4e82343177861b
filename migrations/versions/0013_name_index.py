"""member.name_index (keyed index of the full name; the last four digits' index gains the district) and district_count (members per district and
status, kept by triggers in the transaction of every change to a member)

The name index needs PII_INDEX_KEY, which a migration does not hold: existing members get theirs
from `flask --app wsgi members reindex` (batches, resumable); until then a name search misses
them. The counts need no key: they are counted here, in the transaction that creates the
triggers (on PostgreSQL that transaction holds a lock that keeps writers out until it commits).

The triggers follow every writer (joins, decisions, imports, transfers, withdrawals, retention,
raw SQL) with no call to remember. Caution for later migrations: a SQLite batch operation that
recreates `member` drops its triggers; create them again there (`create_sqlite_triggers`).

Revision ID: 0013
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0013'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL: inserts and deletes are counted once per statement (an import of 20,000 rows is one
# upsert per district and status), changes of district or status once per row. Counter rows are
# always locked in (district_id, status) order, so two transactions that move members in opposite
# directions wait for each other instead of deadlocking.
POSTGRES = [
    """
    CREATE FUNCTION district_count_add(d integer, s varchar, delta bigint) RETURNS void
    LANGUAGE sql AS $$
      INSERT INTO district_count (district_id, status, n) VALUES (d, s, delta)
      ON CONFLICT (district_id, status) DO UPDATE SET n = district_count.n + EXCLUDED.n
    $$
    """,
    """
    CREATE FUNCTION member_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO district_count (district_id, status, n)
        SELECT district_id, status, count(*) FROM new_rows GROUP BY district_id, status ORDER BY 1, 2
      ON CONFLICT (district_id, status) DO UPDATE SET n = district_count.n + EXCLUDED.n;
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION member_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO district_count (district_id, status, n)
        SELECT district_id, status, -count(*) FROM old_rows GROUP BY district_id, status ORDER BY 1, 2
      ON CONFLICT (district_id, status) DO UPDATE SET n = district_count.n + EXCLUDED.n;
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION member_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF OLD.district_id = NEW.district_id AND OLD.status = NEW.status THEN
        RETURN NULL;
      END IF;
      IF (OLD.district_id, OLD.status) < (NEW.district_id, NEW.status) THEN
        PERFORM district_count_add(OLD.district_id, OLD.status, -1);
        PERFORM district_count_add(NEW.district_id, NEW.status, 1);
      ELSE
        PERFORM district_count_add(NEW.district_id, NEW.status, 1);
        PERFORM district_count_add(OLD.district_id, OLD.status, -1);
      END IF;
      RETURN NULL;
    END $$
    """,
    'CREATE TRIGGER member_count_inserted AFTER INSERT ON member REFERENCING NEW TABLE AS new_rows '
    'FOR EACH STATEMENT EXECUTE FUNCTION member_count_inserted()',
    'CREATE TRIGGER member_count_deleted AFTER DELETE ON member REFERENCING OLD TABLE AS old_rows '
    'FOR EACH STATEMENT EXECUTE FUNCTION member_count_deleted()',
    'CREATE TRIGGER member_count_changed AFTER UPDATE OF district_id, status ON member '
    'FOR EACH ROW EXECUTE FUNCTION member_count_changed()',
]

_ADD = (
    "INSERT INTO district_count (district_id, status, n) VALUES ({row}.district_id, {row}.status, {delta}) "
    "ON CONFLICT (district_id, status) DO UPDATE SET n = n + {delta};"
)

# SQLite: row triggers (one writer at a time, so no lock order to keep).
SQLITE = [
    f"CREATE TRIGGER member_count_inserted AFTER INSERT ON member BEGIN {_ADD.format(row='NEW', delta=1)} END",
    f"CREATE TRIGGER member_count_deleted AFTER DELETE ON member BEGIN {_ADD.format(row='OLD', delta=-1)} END",
    "CREATE TRIGGER member_count_changed AFTER UPDATE OF district_id, status ON member "
    "WHEN OLD.district_id IS NOT NEW.district_id OR OLD.status IS NOT NEW.status BEGIN "
    f"{_ADD.format(row='OLD', delta=-1)} {_ADD.format(row='NEW', delta=1)} END",
]

TRIGGERS = ('member_count_inserted', 'member_count_deleted', 'member_count_changed')
FUNCTIONS = ('member_count_inserted()', 'member_count_deleted()', 'member_count_changed()')


def create_sqlite_triggers() -> None:
    for statement in SQLITE:
        op.execute(statement)


def upgrade() -> None:
    with op.batch_alter_table('member') as batch_op:
        batch_op.add_column(sa.Column('name_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        # Name first, then district: SQLite's planner (no statistics) takes it over a walk of the district.
        batch_op.create_index(
            'ix_member_name_district', ['name_index', 'district_id', 'created_at', 'id'], unique=False
        )
        batch_op.drop_index('ix_member_phone_last4_index')
        batch_op.create_index(
            'ix_member_last4_district', ['phone_last4_index', 'district_id', 'created_at', 'id'], unique=False
        )
    op.create_table(
        'district_count',
        sa.Column('district_id', sa.Integer(), nullable=False),
        sa.Column(
            'status',
            sa.Enum('pending', 'approved', 'rejected', name='member_status', native_enum=False, create_constraint=True,
                    length=32),
            nullable=False,
        ),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['district_id'], ['district.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('district_id', 'status'),
    )
    if op.get_bind().dialect.name == 'postgresql':
        # A few rows updated by every join and decision: each update leaves a dead version behind.
        # Free room on each page keeps the updates HOT (pruned in place), and autovacuum comes after
        # every 1,000 dead versions rather than a share of a table this small (measured: 1M joins'
        # worth of updates left 170,000 dead versions, 51 MB, and 40 ms tabs until a vacuum).
        op.execute(
            'ALTER TABLE district_count SET (fillfactor = 25, autovacuum_vacuum_scale_factor = 0, '
            'autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)'
        )
        op.execute('LOCK TABLE member IN SHARE ROW EXCLUSIVE MODE')  # no writer between the count and the triggers
        for statement in POSTGRES:
            op.execute(statement)
    else:
        create_sqlite_triggers()
    op.execute(
        'INSERT INTO district_count (district_id, status, n) '
        'SELECT district_id, status, count(*) FROM member GROUP BY district_id, status'
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name in TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON member')
        for function in (*FUNCTIONS, 'district_count_add(integer, varchar, bigint)'):
            op.execute(f'DROP FUNCTION IF EXISTS {function}')
    else:
        for name in TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
    op.drop_table('district_count')
    with op.batch_alter_table('member') as batch_op:
        batch_op.drop_index('ix_member_name_district')
        batch_op.drop_index('ix_member_last4_district')
        batch_op.create_index('ix_member_phone_last4_index', ['phone_last4_index'], unique=False)
        batch_op.drop_column('name_index')
