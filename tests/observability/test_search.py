"""Semantic search (the search extra): 30 example playbooks, 10 questions
asked the way people ask them, the right playbook first; failed runs found
by what went wrong; the API and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts import tokens
from catalog import services as catalog
from search import service
from search.index import COLLECTION, Document, SearchUnavailable
from tests.grants import grant
from tests.observability.conftest import Run

REPO = Path(__file__).resolve().parents[2]

# (name, description, [(step, what it does, tool)])
PLAYBOOKS = [
    (
        "weather_to_postgres",
        (
            "Fetch hourly weather observations from the weather "
            "API and load them into a PostgreSQL table"
        ),
        [
            ("fetch", "download forecasts and temperatures", "http"),
            ("load", "insert the readings into postgres", "postgres"),
        ],
    ),
    (
        "billing_invoices",
        "Pull unpaid invoices from the billing API and email reminders to customers",
        [
            ("invoices", "list open invoices", "http"),
            ("remind", "send reminder emails", "python"),
        ],
    ),
    (
        "sales_report",
        "Aggregate daily sales by region with DuckDB and publish a PDF report",
        [("aggregate", "sum orders by region", "duckdb")],
    ),
    (
        "user_signup_sync",
        "Copy new user sign-ups from the web app database to the CRM",
        [
            ("read", "select new accounts", "postgres"),
            ("push", "create contacts in the CRM", "http"),
        ],
    ),
    (
        "log_cleanup",
        "Delete application log files older than thirty days from the servers",
        [("purge", "remove old log files", "python")],
    ),
    (
        "currency_rates",
        (
            "Download foreign exchange rates every morning and store "
            "them for price conversion"
        ),
        [("rates", "get EUR and USD exchange rates", "http")],
    ),
    (
        "inventory_restock",
        "Check warehouse stock levels and create purchase orders for items running low",
        [("stock", "count items per warehouse", "postgres")],
    ),
    (
        "tweet_sentiment",
        "Score the sentiment of social media posts mentioning the brand",
        [("score", "classify posts as positive or negative", "python")],
    ),
    (
        "backup_database",
        (
            "Dump the production PostgreSQL database and upload the "
            "backup to object storage"
        ),
        [("dump", "pg_dump the database", "python")],
    ),
    (
        "ml_training",
        (
            "Train the churn prediction model on last month's customer "
            "data and save the model"
        ),
        [("train", "fit a gradient boosting model", "python")],
    ),
    (
        "payroll_export",
        "Compute monthly salaries and export the payroll file for the bank",
        [("salaries", "calculate pay per employee", "python")],
    ),
    (
        "sensor_alerts",
        "Read IoT sensor measurements and alert when a machine overheats",
        [("check", "compare temperatures to thresholds", "python")],
    ),
    (
        "website_uptime",
        "Ping the company websites every five minutes and record whether they are up",
        [("ping", "request each home page", "http")],
    ),
    (
        "gdpr_erasure",
        "Erase personal data of customers who asked to be forgotten",
        [("erase", "anonymise customer rows", "postgres")],
    ),
    (
        "image_thumbnails",
        "Resize uploaded product photos into thumbnails",
        [("resize", "make small images", "python")],
    ),
    (
        "flight_prices",
        "Scrape airline ticket prices for popular routes and track changes",
        [("scrape", "collect fares", "http")],
    ),
    (
        "survey_results",
        "Tabulate answers of the employee satisfaction survey",
        [("tabulate", "count answers per question", "duckdb")],
    ),
    (
        "stock_quotes",
        "Load end-of-day stock market quotes into the analytics warehouse",
        [("quotes", "fetch closing prices", "http")],
    ),
    (
        "email_newsletter",
        "Send the weekly newsletter to all subscribers",
        [("send", "mail the newsletter", "python")],
    ),
    (
        "fraud_detection",
        "Flag suspicious credit card transactions for review",
        [("flag", "score transactions for fraud", "python")],
    ),
    (
        "shipping_tracking",
        "Poll the courier API for parcel delivery status updates",
        [("poll", "get tracking events", "http")],
    ),
    (
        "energy_usage",
        "Collect electricity meter readings and compute daily consumption",
        [("meters", "read smart meters", "http")],
    ),
    (
        "ticket_triage",
        "Route new customer support tickets to the right team",
        [("route", "assign tickets by topic", "python")],
    ),
    (
        "translation_sync",
        (
            "Upload new interface strings to the translation service "
            "and download finished translations"
        ),
        [("sync", "exchange strings", "http")],
    ),
    (
        "clinic_appointments",
        "Remind patients of tomorrow's doctor appointments by SMS",
        [("sms", "text each patient", "http")],
    ),
    (
        "crop_yield",
        "Estimate harvest yield per field from satellite imagery",
        [("estimate", "analyse vegetation index", "python")],
    ),
    (
        "parking_occupancy",
        "Count free parking spaces in city garages",
        [("count", "read garage counters", "http")],
    ),
    (
        "library_loans",
        "List overdue library books and notify borrowers",
        [("overdue", "find late loans", "postgres")],
    ),
    (
        "recipe_nutrition",
        "Calculate calories and nutrients of recipes",
        [("nutrients", "sum ingredient nutrition", "python")],
    ),
    (
        "github_stars",
        "Track the number of stars of our open source repositories",
        [("stars", "query the repository API", "http")],
    ),
]
QUERIES = {
    "playbooks that load weather data into postgres": "weather_to_postgres",
    "remind customers about unpaid bills": "billing_invoices",
    "back up the database": "backup_database",
    "exchange rates for currencies": "currency_rates",
    "machine learning model training": "ml_training",
    "is our website down": "website_uptime",
    "delete personal data for privacy requests": "gdpr_erasure",
    "detect credit card fraud": "fraud_detection",
    "where is my package": "shipping_tracking",
    "notify people about overdue books": "library_loans",
}


def playbook_yaml(
    name: str, description: str, steps: list[tuple[str, str, str]]
) -> str:
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        (
            f"metadata: {{name: {name}, path: examples/search/{name}, "
            f'description: "{description}"}}'
        ),
        "workflow:",
    ]
    for step, desc, tool in steps:
        config = {
            "python": 'code: "result = 1"',
            "http": "url: http://127.0.0.1:1/",
            "duckdb": 'command: "select 1"',
            "postgres": 'command: "select 1"',
        }[tool]
        lines.append(
            f'  - step: {step}\n    desc: "{desc}"\n'
            f"    tool: {{kind: {tool}, {config}}}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def index(transactional_db: None, settings, tmp_path: Path) -> Iterator[None]:
    settings.NOETL_QDRANT_PATH = ":memory:"
    service.reset()
    yield
    service.reset()


def test_the_right_playbook_ranks_first_for_ten_questions(index: None) -> None:
    for name, description, steps in PLAYBOOKS:
        catalog.register(playbook_yaml(name, description, steps))

    firsts = {
        query: service.search(query, kind="playbook", limit=3)[0]["name"]
        for query in QUERIES
    }
    assert firsts == QUERIES


def test_the_scheduler_indexes_new_playbooks_and_failed_runs_each_round(
    index: None, settings, run: Run
) -> None:
    from executions.management.commands.runscheduler import Command

    settings.NOETL_SEARCH_INDEXER = True
    catalog.register(playbook_yaml(*PLAYBOOKS[0]))
    failed = run(failing("billing_sync", "fetch", "billing API timed out"))
    documents = service.playbook_documents(
        catalog.resolve("examples/search/weather_to_postgres").parsed, 1
    )
    assert service.index().missing(documents) == documents

    Command().round()

    assert service.index().missing(documents) == []
    held = service.index().client.retrieve(
        COLLECTION, [Document(f"run:{failed}", "run", "", {}).point_id]
    )
    assert held and held[0].payload["execution_id"] == failed


def test_an_unreachable_qdrant_server_is_said_plainly(index: None, settings) -> None:
    settings.NOETL_QDRANT_URL = "http://127.0.0.1:1"
    service.reset()

    with pytest.raises(SearchUnavailable, match="Qdrant is not available"):
        service.search("anything")


def test_a_new_version_replaces_the_old_one_and_its_steps(index: None) -> None:
    catalog.register(playbook_yaml(*PLAYBOOKS[0]))
    changed = (
        "weather_to_postgres",
        "Archive old weather readings to cold storage",
        [("archive", "move rows older than a year", "postgres")],
    )
    catalog.register(playbook_yaml(*changed))

    hits = service.search("weather", limit=10)
    assert {(h["kind"], h["version"]) for h in hits} == {("playbook", 2), ("step", 2)}
    assert [h["step"] for h in hits if h["kind"] == "step"] == ["archive"]


def test_failed_runs_are_found_by_what_went_wrong(index: None, run: Run) -> None:
    billing = run(
        failing(
            "billing_sync",
            "fetch_invoices",
            "timed out after 30s waiting for the billing API",
        )
    )
    database = run(
        failing(
            "orders_load", "insert_orders", "connection refused by the postgres server"
        )
    )

    hits = service.search(
        "runs that failed on a timeout talking to the billing API", kind="run"
    )
    assert [h["execution_id"] for h in hits[:2]] == [billing, database]
    assert hits[0]["step"] == "fetch_invoices" and hits[0]["error_kind"]
    hits = service.search("database connection problems", kind="run")
    assert hits[0]["execution_id"] == database


def test_a_failed_run_is_labelled_with_the_step_that_failed_it(
    index: None, run: Run
) -> None:
    # "slow" fails a second after "quick" failed the run: the run's step is "quick".
    failed = run(
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        "metadata: {name: two_branches, path: tests/search/two_branches}\n"
        "workflow:\n"
        "  - step: start\n    tool: {kind: noop}\n"
        "    next: {spec: {mode: inclusive}, arcs: [{step: quick}, {step: slow}]}\n"
        "  - step: quick\n"
        "    tool: {kind: python, code: \"raise TimeoutError('quick broke')\"}\n"
        "  - step: slow\n"
        "    tool: {kind: python, code: \"import time\\ntime.sleep(1)\\n"
        "raise KeyError('slow broke')\"}\n"
    )

    [hit] = service.search("quick broke", kind="run")
    assert hit["execution_id"] == failed
    assert hit["step"] == "quick" and "quick broke" in hit["message"]


def failing(name: str, step: str, message: str) -> str:
    return (
        f"apiVersion: noetl.io/v2\nkind: Playbook\n"
        f"metadata: {{name: {name}, path: tests/search/{name}}}\nworkflow:\n"
        f"  - step: {step}\n    tool: {{kind: python, code: "
        f"\"raise TimeoutError('{message}')\"}}\n"
    )


def test_the_api_searches_and_says_what_is_wrong_with_a_request(
    index: None,
) -> None:
    catalog.register(playbook_yaml(*PLAYBOOKS[0]))
    user = User.objects.create_user("searcher", password="pw")
    grant(user)  # may view every path
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.mint(user, 't')[1]}")

    body = api.get("/api/search/", {"q": "weather into postgres"}).json()
    assert {hit["kind"] for hit in body["results"]} == {"playbook", "step"}
    only = api.get("/api/search/", {"q": "weather", "kind": "playbook"}).json()
    [hit] = only["results"]
    assert hit["path"] == "examples/search/weather_to_postgres" and hit["score"] > 0
    assert api.get("/api/search/").status_code == 400
    assert api.get("/api/search/", {"q": "x", "kind": "nope"}).status_code == 400
    assert APIClient().get("/api/search/", {"q": "x"}).status_code == 401


def test_noetl_search_on_the_command_line(tmp_path: Path) -> None:
    playbook = tmp_path / "weather.yaml"
    playbook.write_text(playbook_yaml(*PLAYBOOKS[0]))
    other = tmp_path / "billing.yaml"
    other.write_text(playbook_yaml(*PLAYBOOKS[1]))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
    }
    env["NOETL_HOME"] = str(tmp_path / "home")

    def noetl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "noetl_site.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert noetl("register", str(playbook), str(other)).returncode == 0
    found = noetl("search", "invoices customers have not paid", "--kind", "playbook")
    assert found.returncode == 0, found.stderr
    score, kind, label, description = found.stdout.splitlines()[0].split("\t")
    assert (kind, label) == ("playbook", "examples/search/billing_invoices v1")
    assert float(score) > 0 and description.startswith("Pull unpaid invoices")
