"""Plain INSERT and UPDATE statements for the ingest hot path.

Each report writes a handful of rows; building those statements through the
ORM's query compiler costs several times what the database spends running
them. These helpers write the same portable SQL (``%s`` parameters, adapted
by each model field for the connection in use, so it runs on SQLite and
PostgreSQL alike) and cache the statement text per shape. They do no more
than the ORM would: no signals, no validation; auto_now fields are set.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone


@dataclass(frozen=True)
class Add:
    """``column = column + amount`` in an update."""

    amount: int


def insert(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """INSERT the rows (by field name) in one statement; unnamed fields take
    their defaults, auto_now(_add) fields the current time."""
    if not rows:
        return
    conn = connections[DEFAULT_DB_ALIAS]
    fields = _insert_fields(model)
    now = timezone.now()
    params: list[Any] = []
    for row in rows:
        for field, plain, auto_now in fields:
            name = field.name
            if name in row:
                value = row[name]
            elif auto_now:
                value = now
            else:
                value = field.get_default()
            params.append(value if value is None or type(value) in plain
                          else _prep_save(field, value, conn))
    with conn.cursor() as cursor:
        cursor.execute(_insert_sql(model, len(rows)), params)


def update(model: type[models.Model], values: dict[str, Any], **where: Any) -> int:
    """UPDATE ... SET values WHERE field = value AND ...; a list or tuple in
    ``where`` means IN. Returns the number of rows changed."""
    conn = connections[DEFAULT_DB_ALIAS]
    assignments, params = [], []
    for name, value in values.items():
        field, column, plain = _column(model, name)
        if isinstance(value, Add):
            assignments.append(f"{column} = {column} + %s")
            params.append(value.amount)
        else:
            assignments.append(f"{column} = %s")
            params.append(value if value is None or type(value) in plain
                          else _prep_save(field, value, conn))
    conditions = []
    for name, value in where.items():
        field, column, plain = _column(model, name)
        if isinstance(value, (list, tuple)):
            if not value:
                return 0
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params += [v if type(v) in plain else field.get_db_prep_value(v, conn)
                       for v in value]
        else:
            conditions.append(f"{column} = %s")
            params.append(value if type(value) in plain
                          else field.get_db_prep_value(value, conn))
    sql = (f"UPDATE {_table(model)} SET "
           f"{', '.join(assignments)} WHERE {' AND '.join(conditions)}")
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _prep_save(field: models.Field, value: Any, conn: Any = None) -> Any:
    """The parameter for a value of ``field``; JSON is encoded with orjson,
    several times faster than the ORM's ``json.dumps`` on every event."""
    conn = conn or connections[DEFAULT_DB_ALIAS]
    if value is None or not isinstance(field, models.JSONField) or field.encoder:
        return field.get_db_prep_save(value, conn)
    if conn.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import Jsonb

        return Jsonb(value, dumps=_json_text)
    return _json_text(value)


# Field classes whose parameter is the value itself for values of exactly
# these types: what get_db_prep_save would return anyway (str for text,
# int for integers, bool for booleans; None is NULL for every field here).
# Anything else (datetimes, JSON, enum members, subclasses) takes the
# field's own conversion.
_PLAIN_TYPES: dict[type[models.Field], frozenset[type]] = {
    models.CharField: frozenset({str}),
    models.TextField: frozenset({str}),
    models.IntegerField: frozenset({int}),
    models.BigIntegerField: frozenset({int}),
    models.SmallIntegerField: frozenset({int}),
    models.PositiveIntegerField: frozenset({int}),
    models.PositiveBigIntegerField: frozenset({int}),
    models.PositiveSmallIntegerField: frozenset({int}),
    models.BigAutoField: frozenset({int}),
    models.AutoField: frozenset({int}),
    models.FloatField: frozenset({float}),
    models.BooleanField: frozenset({bool}),
}


def _plain_types(field: models.Field) -> frozenset[type]:
    if isinstance(field, models.ForeignKey):
        target = field.target_field
        if type(target) in _PLAIN_TYPES:
            return _PLAIN_TYPES[type(target)]
        return frozenset()
    return _PLAIN_TYPES.get(type(field), frozenset())


@lru_cache(maxsize=None)
def _column(model: type[models.Model], name: str) -> tuple[models.Field, str, frozenset[type]]:
    field = model._meta.get_field(name)
    return field, connection.ops.quote_name(field.column), _plain_types(field)


@lru_cache(maxsize=None)
def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _json_text(value: Any) -> str:
    from executions.engine.values import dumps

    return dumps(value).decode()


@lru_cache(maxsize=None)
def _insert_fields(
    model: type[models.Model],
) -> list[tuple[models.Field, frozenset[type], bool]]:
    """(field, the value types passed as they are, whether it is auto_now).
    db_returning: the columns the database fills in itself (auto ids)."""
    return [
        (f, _plain_types(f),
         bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)))
        for f in model._meta.concrete_fields if not f.db_returning
    ]


@lru_cache(maxsize=256)
def _insert_sql(model: type[models.Model], count: int) -> str:
    quote = connection.ops.quote_name
    fields = [f for f, _, _ in _insert_fields(model)]
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES "
            + ", ".join([row] * count))


# The database's clock, as each vendor writes it (the same text Django's
# Now() produces, so these values compare with the ORM's).
_NOW = {
    "postgresql": "STATEMENT_TIMESTAMP()",
    "sqlite": "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')",
}
_NOW_PLUS = {
    "postgresql": "STATEMENT_TIMESTAMP() + %s * INTERVAL '1 second'",
    "sqlite": "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW', %s)",
}


def grant_leases(ids: list[str], pool: str, worker_id: str, token: str,
                 ttl_s: float) -> int:
    """Lease the queued, due commands among ``ids`` of ``pool`` to a worker,
    until the database's now + ``ttl_s``. The one statement here that is
    written per vendor: the lease is timed by the database clock, never by
    this process's (DESIGN-NOTES R6). Returns how many were granted."""
    from executions.models import Command

    vendor = connection.vendor
    ttl: Any = f"+{ttl_s} seconds" if vendor == "sqlite" else ttl_s
    placeholders = ", ".join(["%s"] * len(ids))
    sql = (
        f"UPDATE {connection.ops.quote_name(Command._meta.db_table)} SET state = %s, "
        f"lease_owner = %s, claim_id = %s, lease_expires_at = {_NOW_PLUS[vendor]} "
        f"WHERE id IN ({placeholders}) AND state = %s AND pool = %s "
        f"AND (not_before IS NULL OR not_before <= {_NOW[vendor]})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ["running", worker_id, token, ttl, *ids, "queued", pool])
        return cursor.rowcount


# The columns of a run a report needs, read with its command's fencing
# columns in one statement (see ``lock_for_report``).
_RUN_COLUMNS = ("playbook_id", "path", "version", "status", "parent_id",
                "parent_command", "state", "next_seq", "owner")


def lock_for_report(execution_id: str, command_id: str) -> dict[str, Any] | None:
    """Lock a run's row (FOR UPDATE where the database has it; SQLite has a
    single writer) and read it with the state and delivery of one of its
    commands: one statement instead of an ORM ``get`` and a second query.
    None if the run does not exist; ``command_state`` is None if the command
    does not. The JSON state is decoded with orjson."""
    from executions.engine.values import loads
    from executions.models import Command, Execution

    quote = connection.ops.quote_name
    columns = ", ".join(f"e.{quote(c)}" for c in _RUN_COLUMNS)
    lock = " FOR UPDATE OF e" if connection.features.has_select_for_update else ""
    sql = (
        f"SELECT {columns}, c.state, c.delivery "
        f"FROM {quote(Execution._meta.db_table)} e "
        f"LEFT JOIN {quote(Command._meta.db_table)} c "
        f"ON c.id = %s AND c.execution_id = e.id WHERE e.id = %s{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [command_id, execution_id])
        row = cursor.fetchone()
    if row is None:
        return None
    run = dict(zip(_RUN_COLUMNS, row[: len(_RUN_COLUMNS)]))
    state = run["state"]
    run["state"] = loads(state) if isinstance(state, (str, bytes)) else state
    run["command_state"], run["command_delivery"] = row[len(_RUN_COLUMNS):]
    return run
