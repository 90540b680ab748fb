"""the daily roll-up of the statistics: counts per organisation, day and measure, kept by triggers; the
console's counts of held letters and outbox rows read from indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 13:00:00

`message.routed_by` holds who routed a letter by its latest decision (NULL when that decision did not
route it); `daily_count` holds changes to the counts of the day a letter was received (UTC): the
letter's status (`status:<status>`), who routed it (`routed:<decided_by>`) and its delivered outbox
rows (`channel:<channel>`). The database writes both in the transaction of the change itself, by
triggers, so no code path that moves a letter (bulk updates of retention and erasure included) can
leave the figures behind. Appending a change instead of updating one counter row keeps concurrent
transactions from waiting on, or deadlocking over, a shared row; core/storage/daily_counts.py folds
the changes into one settled row per organisation, day and measure.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ROUTED_BY = "('rule', 'model', 'hand', 'default')"
LATEST_ROUTED_BY = f"""(SELECT CASE WHEN r.action = 'route' AND r.decided_by IN {ROUTED_BY} THEN r.decided_by END
    FROM routing_decision r WHERE r.message_id = message.id ORDER BY r.id DESC LIMIT 1)"""


def _seed(day: str) -> str:
    """The counts of the letters already stored, as settled rows (`day`: the dialect's UTC day of `at`)."""
    of = lambda at: day.format(at=at)  # noqa: E731
    return f"""
INSERT INTO daily_count (organisation_cvr, day, measure, count, settled)
SELECT organisation_cvr, {of('received_at')}, 'status:' || status, count(*), TRUE FROM message GROUP BY 1, 2, 3
UNION ALL
SELECT organisation_cvr, {of('received_at')}, 'routed:' || routed_by, count(*), TRUE FROM message
    WHERE routed_by IS NOT NULL GROUP BY 1, 2, 3
UNION ALL
SELECT m.organisation_cvr, {of('m.received_at')}, 'channel:' || d.channel, count(*), TRUE
    FROM delivery d JOIN message m ON m.id = d.message_id WHERE d.status = 'delivered' GROUP BY 1, 2, 3
"""


# -- SQLite: one trigger per statement kind; `WHEN` and `WHERE` pick the rows that change a count -------

def _sqlite_add(row: str, measure: str, sign: str, where: str) -> str:
    return (f"INSERT INTO daily_count (organisation_cvr, day, measure, count, settled) "
            f"SELECT {row}.organisation_cvr, strftime('%Y-%m-%d', {row}.received_at), {measure}, {sign}1, 0 "
            f"WHERE {where};")


_MOVED = "OLD.organisation_cvr IS NOT NEW.organisation_cvr OR OLD.received_at IS NOT NEW.received_at"
_SQLITE_MESSAGE = [
    f"""CREATE TRIGGER daily_count_message_insert AFTER INSERT ON message BEGIN
    {_sqlite_add('NEW', "'status:' || NEW.status", '+', '1')}
    {_sqlite_add('NEW', "'routed:' || NEW.routed_by", '+', 'NEW.routed_by IS NOT NULL')}
END""",
    f"""CREATE TRIGGER daily_count_message_update
AFTER UPDATE OF status, routed_by, organisation_cvr, received_at ON message
WHEN OLD.status IS NOT NEW.status OR OLD.routed_by IS NOT NEW.routed_by OR {_MOVED} BEGIN
    {_sqlite_add('OLD', "'status:' || OLD.status", '-', f'OLD.status IS NOT NEW.status OR {_MOVED}')}
    {_sqlite_add('NEW', "'status:' || NEW.status", '+', f'OLD.status IS NOT NEW.status OR {_MOVED}')}
    {_sqlite_add('OLD', "'routed:' || OLD.routed_by", '-',
                 f'OLD.routed_by IS NOT NULL AND (OLD.routed_by IS NOT NEW.routed_by OR {_MOVED})')}
    {_sqlite_add('NEW', "'routed:' || NEW.routed_by", '+',
                 f'NEW.routed_by IS NOT NULL AND (OLD.routed_by IS NOT NEW.routed_by OR {_MOVED})')}
END""",
    f"""CREATE TRIGGER daily_count_message_delete AFTER DELETE ON message BEGIN
    {_sqlite_add('OLD', "'status:' || OLD.status", '-', '1')}
    {_sqlite_add('OLD', "'routed:' || OLD.routed_by", '-', 'OLD.routed_by IS NOT NULL')}
END""",
]


def _sqlite_routed_by(row: str) -> str:
    # Recomputed from the decisions as they stand: right whether one row or a whole batch changed.
    latest = LATEST_ROUTED_BY.replace("message.id", f"{row}.message_id")
    return f"UPDATE message SET routed_by = {latest} WHERE id = {row}.message_id AND routed_by IS NOT {latest};"


_SQLITE_DECISION = [
    f"CREATE TRIGGER message_routed_by_insert AFTER INSERT ON routing_decision BEGIN {_sqlite_routed_by('NEW')} END",
    f"""CREATE TRIGGER message_routed_by_update AFTER UPDATE OF message_id, action, decided_by ON routing_decision
BEGIN {_sqlite_routed_by('OLD')} {_sqlite_routed_by('NEW')} END""",
    f"CREATE TRIGGER message_routed_by_delete AFTER DELETE ON routing_decision BEGIN {_sqlite_routed_by('OLD')} END",
]


def _sqlite_channel(row: str, sign: str, where: str) -> str:
    return (f"INSERT INTO daily_count (organisation_cvr, day, measure, count, settled) "
            f"SELECT m.organisation_cvr, strftime('%Y-%m-%d', m.received_at), 'channel:' || {row}.channel, "
            f"{sign}1, 0 FROM message m WHERE m.id = {row}.message_id AND {where};")


_DELIVERY_MOVED = ("OLD.status IS NOT NEW.status OR OLD.channel IS NOT NEW.channel "
                   "OR OLD.message_id IS NOT NEW.message_id")
_SQLITE_DELIVERY = [
    f"""CREATE TRIGGER daily_count_delivery_insert AFTER INSERT ON delivery WHEN NEW.status = 'delivered' BEGIN
    {_sqlite_channel('NEW', '+', '1')}
END""",
    f"""CREATE TRIGGER daily_count_delivery_update AFTER UPDATE OF status, channel, message_id ON delivery
WHEN {_DELIVERY_MOVED} BEGIN
    {_sqlite_channel('OLD', '-', "OLD.status = 'delivered'")}
    {_sqlite_channel('NEW', '+', "NEW.status = 'delivered'")}
END""",
    f"""CREATE TRIGGER daily_count_delivery_delete AFTER DELETE ON delivery WHEN OLD.status = 'delivered' BEGIN
    {_sqlite_channel('OLD', '-', '1')}
END""",
]

# -- PostgreSQL: one function per table, triggered after each row ---------------------------------------

_PG_FUNCTIONS = [
    """CREATE FUNCTION daily_count_add(org varchar, at timestamptz, what varchar, n integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO daily_count (organisation_cvr, day, measure, count, settled)
    VALUES (org, (at AT TIME ZONE 'UTC')::date, what, n, false)
$$""",
    """CREATE FUNCTION daily_count_message() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved boolean := false;
    status_changed boolean := true;
    routed_changed boolean := true;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        moved := OLD.organisation_cvr IS DISTINCT FROM NEW.organisation_cvr
                 OR OLD.received_at IS DISTINCT FROM NEW.received_at;
        status_changed := moved OR OLD.status IS DISTINCT FROM NEW.status;
        routed_changed := moved OR OLD.routed_by IS DISTINCT FROM NEW.routed_by;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF status_changed THEN
            PERFORM daily_count_add(OLD.organisation_cvr, OLD.received_at, 'status:' || OLD.status, -1);
        END IF;
        IF routed_changed AND OLD.routed_by IS NOT NULL THEN
            PERFORM daily_count_add(OLD.organisation_cvr, OLD.received_at, 'routed:' || OLD.routed_by, -1);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF status_changed THEN
            PERFORM daily_count_add(NEW.organisation_cvr, NEW.received_at, 'status:' || NEW.status, 1);
        END IF;
        IF routed_changed AND NEW.routed_by IS NOT NULL THEN
            PERFORM daily_count_add(NEW.organisation_cvr, NEW.received_at, 'routed:' || NEW.routed_by, 1);
        END IF;
    END IF;
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION message_routed_by_of(target varchar) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    latest varchar;
BEGIN
    -- Recomputed from the decisions as they stand: right whether one row or a whole batch changed.
    SELECT CASE WHEN action = 'route' AND decided_by IN {ROUTED_BY} THEN decided_by END INTO latest
        FROM routing_decision WHERE message_id = target ORDER BY id DESC LIMIT 1;
    UPDATE message SET routed_by = latest WHERE id = target AND routed_by IS DISTINCT FROM latest;
END $$""",
    """CREATE FUNCTION message_routed_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM message_routed_by_of(OLD.message_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM message_routed_by_of(NEW.message_id);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION daily_count_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF OLD.status = 'delivered' THEN
            PERFORM daily_count_add(m.organisation_cvr, m.received_at, 'channel:' || OLD.channel, -1)
                FROM message m WHERE m.id = OLD.message_id;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NEW.status = 'delivered' THEN
            PERFORM daily_count_add(m.organisation_cvr, m.received_at, 'channel:' || NEW.channel, 1)
                FROM message m WHERE m.id = NEW.message_id;
        END IF;
    END IF;
    RETURN NULL;
END $$""",
]
_PG_TRIGGERS = [
    "CREATE TRIGGER daily_count_message_insert AFTER INSERT OR DELETE ON message "
    "FOR EACH ROW EXECUTE FUNCTION daily_count_message()",
    "CREATE TRIGGER daily_count_message_update AFTER UPDATE OF status, routed_by, organisation_cvr, received_at "
    "ON message FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status "
    "OR OLD.routed_by IS DISTINCT FROM NEW.routed_by OR OLD.organisation_cvr IS DISTINCT FROM NEW.organisation_cvr "
    "OR OLD.received_at IS DISTINCT FROM NEW.received_at) EXECUTE FUNCTION daily_count_message()",
    "CREATE TRIGGER message_routed_by AFTER INSERT OR DELETE OR UPDATE OF message_id, action, decided_by "
    "ON routing_decision FOR EACH ROW EXECUTE FUNCTION message_routed_by()",
    "CREATE TRIGGER daily_count_delivery AFTER INSERT OR DELETE OR UPDATE OF status, channel, message_id "
    "ON delivery FOR EACH ROW EXECUTE FUNCTION daily_count_delivery()",
]


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('routed_by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    op.execute(f"UPDATE message SET routed_by = {LATEST_ROUTED_BY}")
    op.create_table('daily_count',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_cvr', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('measure', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('settled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_daily_count_org_day', 'daily_count', ['organisation_cvr', 'day', 'measure', 'count'],
                    unique=False)
    op.create_index('ix_daily_count_settled', 'daily_count', ['settled', 'organisation_cvr', 'day'], unique=False)
    # The console's counts of held letters and outbox rows for some organisations, from indexes alone.
    op.drop_index('ix_message_status_received', table_name='message')
    op.create_index('ix_message_status_received', 'message', ['status', 'received_at', 'id', 'organisation_cvr'],
                    unique=False)
    op.create_index('ix_delivery_status_org_channel', 'delivery', ['status', 'organisation_cvr', 'channel'],
                    unique=False)
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(_seed("strftime('%Y-%m-%d', {at})" if sqlite else "({at} AT TIME ZONE 'UTC')::date"))
    for statement in (_SQLITE_MESSAGE + _SQLITE_DECISION + _SQLITE_DELIVERY) if sqlite else \
            (_PG_FUNCTIONS + _PG_TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, names in (("message", ("daily_count_message_insert", "daily_count_message_update",
                                          "daily_count_message_delete")),
                             ("routing_decision", ("message_routed_by_insert", "message_routed_by_update",
                                                   "message_routed_by_delete")),
                             ("delivery", ("daily_count_delivery_insert", "daily_count_delivery_update",
                                           "daily_count_delivery_delete"))):
            for name in names:
                op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name, table in (("daily_count_message_insert", "message"), ("daily_count_message_update", "message"),
                            ("message_routed_by", "routing_decision"), ("daily_count_delivery", "delivery")):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in ("daily_count_delivery()", "message_routed_by()", "message_routed_by_of(varchar)",
                         "daily_count_message()", "daily_count_add(varchar, timestamptz, varchar, integer)"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_index('ix_delivery_status_org_channel', table_name='delivery')
    op.drop_index('ix_message_status_received', table_name='message')
    op.create_index('ix_message_status_received', 'message', ['status', 'received_at'], unique=False)
    op.drop_index('ix_daily_count_settled', table_name='daily_count')
    op.drop_index('ix_daily_count_org_day', table_name='daily_count')
    op.drop_table('daily_count')
    # Not in batch mode: rebuilding the message table on SQLite would trip its foreign keys.
    op.execute("ALTER TABLE message DROP COLUMN routed_by")
