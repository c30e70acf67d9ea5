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

from django.db import connection, models
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
    fields = _insert_fields(model)
    now = timezone.now()
    params: list[Any] = []
    for row in rows:
        for field in fields:
            if field.name in row:
                value = row[field.name]
            elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                value = now
            else:
                value = field.get_default()
            params.append(_prep_save(field, value))
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, len(rows)), params)


def update(model: type[models.Model], values: dict[str, Any], **where: Any) -> int:
    """UPDATE ... SET values WHERE field = value AND ...; a list or tuple in
    ``where`` means IN. Returns the number of rows changed."""
    meta = model._meta
    assignments, params = [], []
    for name, value in values.items():
        field = meta.get_field(name)
        column = connection.ops.quote_name(field.column)
        if isinstance(value, Add):
            assignments.append(f"{column} = {column} + %s")
            params.append(value.amount)
        else:
            assignments.append(f"{column} = %s")
            params.append(_prep_save(field, value))
    conditions = []
    for name, value in where.items():
        field = meta.get_field(name)
        column = connection.ops.quote_name(field.column)
        if isinstance(value, (list, tuple)):
            if not value:
                return 0
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params += [field.get_db_prep_value(v, connection) for v in value]
        else:
            conditions.append(f"{column} = %s")
            params.append(field.get_db_prep_value(value, connection))
    sql = (f"UPDATE {connection.ops.quote_name(meta.db_table)} SET "
           f"{', '.join(assignments)} WHERE {' AND '.join(conditions)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _prep_save(field: models.Field, value: Any) -> Any:
    """The parameter for a value of ``field``; JSON is encoded with orjson,
    several times faster than the ORM's ``json.dumps`` on every event."""
    if value is None or not isinstance(field, models.JSONField) or field.encoder:
        return field.get_db_prep_save(value, connection)
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import Jsonb

        return Jsonb(value, dumps=_json_text)
    return _json_text(value)


def _json_text(value: Any) -> str:
    from executions.engine.values import dumps

    return dumps(value).decode()


@lru_cache(maxsize=None)
def _insert_fields(model: type[models.Model]) -> list[models.Field]:
    # db_returning: the columns the database fills in itself (auto ids).
    return [f for f in model._meta.concrete_fields if not f.db_returning]


@lru_cache(maxsize=256)
def _insert_sql(model: type[models.Model], count: int) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
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
