"""The one list of tool kinds: their module, parameters and credential types.

``run_tool`` looks modules up here and ``noetl tools`` prints it, so a kind
added here is both runnable and documented. Nothing is imported to list the
kinds: a kind whose optional dependencies are missing is still listed (with
the extra that installs them) and fails only when run.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class ToolSpec:
    kind: str
    module: str
    summary: str
    parameters: dict[str, str]
    credential_types: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    extra: str = ""  # the pyproject extra its dependencies come from
    notes: str = ""
    requires: tuple[str, ...] = ()  # import names of its optional packages

    def available(self) -> bool:
        """Whether its optional packages are installed (nothing is imported)."""
        return all(_installed(name) for name in self.requires)

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "parameters": dict(self.parameters),
            "credential_types": list(self.credential_types),
            "notes": self.notes,
            "extra": self.extra,
            "available": self.available(),
        }


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


_SQL = {
    "command": "SQL text (also commands, query, queries, cmd, *_b64, script)",
    "auth": "credential name (or an auth map)",
}

SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "python",
        "workers.tools.python",
        "run Python code in a forked child; `result` is the task result",
        {
            "code": "Python source (or code_b64, script)",
            "input": "values injected as globals",
            "libs": "modules pre-imported under aliases",
        },
    ),
    ToolSpec(
        "http",
        "workers.tools.http",
        "one HTTP request; non-2xx is an error",
        {
            "url": "the URL (or endpoint)",
            "method": "GET, POST, ... (default GET)",
            "headers": "a map",
            "params": "query string map",
            "json/payload/body/data/form": "the body",
            "timeout": "seconds, or {connect, read}",
            "auth": "credential name (bearer, basic, api_key, headers)",
        },
        ("http", "bearer", "basic", "api_key"),
    ),
    ToolSpec(
        "postgres",
        "workers.tools.postgres",
        "SQL statements on PostgreSQL; rows of the last statement",
        {**_SQL, "exactly_once": "run all statements once per effect key"},
        ("postgres",),
    ),
    ToolSpec(
        "duckdb",
        "workers.tools.duckdb",
        "SQL statements on DuckDB; rows of the last statement",
        {
            **_SQL,
            "database": "file path or :memory: (default)",
            "auth": "credential name, or {alias: name} for several s3/gcs secrets",
        },
        ("s3", "gcs", "gcs_hmac"),
    ),
    ToolSpec("noop", "workers.tools.noop", "does nothing; carries `set`", {}),
    ToolSpec(
        "shell",
        "workers.tools.shell",
        "shell commands under NOETL_HOME, with a timeout; output masked",
        {
            "cmds": "a list of command lines (or command)",
            "env": "extra environment variables",
            "cwd": "working directory, relative to NOETL_HOME (default work/)",
            "auth": "credential whose fields become upper-case env variables",
            "check": "fail on a non-zero exit (default true)",
            "shell": "interpreter (default /bin/sh)",
            "timeout": "seconds or 30s/5m",
        },
        ("any",),
    ),
    ToolSpec(
        "secrets",
        "workers.tools.secrets",
        "fetch one secret; masked in every report",
        {
            "provider": "env (default) or credential",
            "name": "environment variable or credential name",
            "field": "one field of the credential",
        },
        ("any",),
    ),
    ToolSpec(
        "nats",
        "workers.tools.nats",
        "JetStream key-value, object store and publish",
        {
            "operation": "kv_get | kv_put | kv_delete | kv_keys | object_get | "
            "object_put | object_delete | object_list | js_publish",
            "bucket": "key-value or object store bucket (created by a put)",
            "key": "key (kv) or object name (name)",
            "value": "map/list (JSON), text, or base64 with encoding: base64",
            "subject": "subject to publish to (js_publish); headers, stream",
            "format": "read values as text | json | base64 (default: guess)",
            "auth": "credential name (url, user/password, token, nkeys_seed, creds)",
        },
        ("nats",),
    ),
    ToolSpec(
        "clickhouse",
        "workers.tools.clickhouse",
        "SQL on ClickHouse (native protocol); rows of the last statement",
        {
            **_SQL,
            "insert": "{table, rows: [{column: value}]} sent as data",
            "host/port/user/password/database": "inline connection keys",
        },
        ("clickhouse",),
        extra="connectors",
        requires=("clickhouse_driver",),
    ),
    ToolSpec(
        "storage",
        "workers.tools.storage",
        "get, put, list, delete objects at s3://, gs:// or file:// URIs",
        {
            "operation": "get | put | list | delete (or action)",
            "uri": "s3://bucket/key, gs://bucket/key, file:///path (list: a prefix)",
            "value": "map/list (JSON), text, or base64 with encoding: base64",
            "format": "read values as text | json | base64 (default: guess)",
            "auth": "credential name: s3 (key_id, secret, region, endpoint) or "
            "gcs (service_account, token, endpoint)",
        },
        ("s3", "gcs"),
        aliases=("s3", "gcs", "artifact"),
        extra="connectors",
        requires=("boto3", "google.cloud.storage"),
        notes="file:// is confined to NOETL_FILE_ROOTS (default $NOETL_HOME/files)",
    ),
    ToolSpec(
        "qdrant",
        "workers.tools.qdrant",
        "vector store: collections, upsert, search, delete, count",
        {
            "operation": "create_collection | upsert | search | delete | count | "
            "delete_collection",
            "collection": "collection name; size and distance when creating",
            "points": "[{id, vector | text, payload}] for upsert",
            "vector/text": "what to search for; text is hashed into words",
            "filter": "{payload field: value} (all must match)",
            "path": "local store under NOETL_HOME (default qdrant)",
            "auth": "credential name with url and api_key: a Qdrant server",
        },
        ("qdrant",),
        extra="connectors",
        requires=("qdrant_client",),
    ),
    ToolSpec(
        "transfer",
        "workers.tools.transfer",
        "copy rows between http, postgres, duckdb and clickhouse in batches",
        {
            "source": "{kind: postgres|duckdb|clickhouse, auth, query} or "
            "{kind: http, url, rows_path}",
            "target": "{kind: postgres|duckdb|clickhouse, auth, table} or "
            "{kind: http, url} (each batch POSTed as a JSON list)",
            "batch_size": "rows per batch (default 1000); each batch commits",
        },
        ("postgres", "clickhouse", "s3", "gcs", "http", "bearer", "basic"),
        extra="connectors",
        requires=("clickhouse_driver",),
    ),
    ToolSpec(
        "snowflake",
        "workers.tools.snowflake",
        "SQL on Snowflake; rows of the last statement (needs an account)",
        {
            **_SQL,
            "warehouse/database/schema/role": "override the credential's",
        },
        ("snowflake",),
        extra="connectors",
        requires=("snowflake.connector",),
        notes="credential: account, user, and password or private_key (PEM, "
        "private_key_passphrase)",
    ),
)


# Kinds a playbook may use that no tool module runs: the engine starts
# sub-playbooks, and the command runner resolves a workbook call to the tool
# of the entry it names.
ENGINE_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "playbook",
        "",
        "run another registered playbook as a child run (run by the engine)",
        {
            "path": "the child's catalog path (may be templated)",
            "version": "catalog version (default latest)",
            "input": "the child's payload, over its workload (also payload)",
            "return_step": "wait for the child and return this step's result; "
            "without it the call starts the child and goes on",
            "timeout": "seconds to wait for the child (default 300)",
        },
    ),
    ToolSpec(
        "workbook",
        "",
        "run a named task of the playbook's `workbook` with this call's input",
        {
            "task": "the workbook entry to run (or name, in a single map)",
            "input": "merged over the entry's own input",
        },
    ),
)


def listed() -> tuple[ToolSpec, ...]:
    """Every kind a playbook may use, in the order `noetl tools` shows them."""
    return SPECS + ENGINE_SPECS


def by_kind(specs: tuple[ToolSpec, ...] = SPECS) -> dict[str, ToolSpec]:
    """Every kind and alias of ``specs`` (the tool modules' by default)
    mapped to its spec."""
    found: dict[str, ToolSpec] = {}
    for spec in specs:
        found[spec.kind] = spec
        for alias in spec.aliases:
            found[alias] = spec
    return found
