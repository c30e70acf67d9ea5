"""Settings for the test suite: the project's settings, with Django's test
database on the real local PostgreSQL (tests that touch the database use
the real server, never SQLite stand-ins or mocks).

Subprocesses the tests start (``noetl ...``, ``manage.py runworker``) are
given their own environment and do not read this module."""

import atexit
import os
import shutil
import tempfile

# Whatever the suite keeps under NOETL_HOME (a development key, a local
# Qdrant store, shell working directories) goes to a directory of this test
# process, removed at exit, never to the developer's ./.noetl.
os.environ["NOETL_HOME"] = tempfile.mkdtemp(prefix="noetl-test-home-")
os.environ.pop("NOETL_QDRANT_PATH", None)
atexit.register(shutil.rmtree, os.environ["NOETL_HOME"], ignore_errors=True)

os.environ.setdefault(
    "DATABASE_URL",
    os.environ.get("NOETL_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
)

from noetl_site.settings import *  # noqa: E402,F403
from noetl_site.settings import DATABASES  # noqa: E402

DATABASES["default"]["CONN_MAX_AGE"] = 0
# NOETL_TEST_DB lets two checkouts run their suites side by side.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("NOETL_TEST_DB", "test_noetl")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
