"""``noetl search "..."``: playbooks, steps and failed runs by meaning, on
the local database or (with ``--server``) through ``/api/search/``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from search.index import KINDS


def add_parser(add: Any) -> None:
    search = add("search", help="find playbooks, steps or failed runs by meaning")
    search.add_argument("query", help='e.g. "playbooks that load weather data"')
    search.add_argument("--kind", choices=KINDS, help="only this kind of result")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--json", action="store_true", help="print one JSON document")
    search.set_defaults(func=local)


def local(args: argparse.Namespace) -> int:
    from noetl_site import cli
    from search import service
    from search.index import SearchUnavailable

    try:
        results = service.search(args.query, kind=args.kind or "", limit=args.limit)
    except SearchUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return cli.EXIT_SERVER
    finally:
        service.reset()
    show(results, as_json=args.json)
    return cli.EXIT_OK


def remote(args: argparse.Namespace, client: Any) -> int:
    from noetl_site import cli

    params: dict[str, Any] = {"q": args.query, "limit": args.limit}
    if args.kind:
        params["kind"] = args.kind
    show(
        client.call("GET", "/api/search/", params=params)["results"], as_json=args.json
    )
    return cli.EXIT_OK


def show(results: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"results": results}, indent=2, default=str))
        return
    if not results:
        print("nothing found")
    for hit in results:
        print(f"{hit['score']:.3f}\t{hit['kind']}\t{_label(hit)}\t{_summary(hit)}")


def _label(hit: dict[str, Any]) -> str:
    if hit["kind"] == "run":
        return f"{hit['execution_id']} ({hit['path']})"
    if hit["kind"] == "step":
        return f"{hit['path']} v{hit['version']} step {hit['step']}"
    return f"{hit['path']} v{hit['version']}"


def _summary(hit: dict[str, Any]) -> str:
    if hit["kind"] == "run":
        return f"{hit.get('step') or '-'}: {hit.get('message', '')}"
    if hit["kind"] == "step":
        return hit.get("text", "")
    return hit.get("description") or hit.get("text", "")
