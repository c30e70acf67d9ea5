"""gunicorn's own settings for the web process: ``gunicorn -c
python:noetl_site.gunicorn_conf noetl_site.wsgi``. Its own lines (start-up,
worker boots and exits, the access log when enabled) go through the same
formatter as every ``noetl`` record, so the whole process logs JSON, or text
for people, as ``NOETL_LOG_FORMAT`` says."""

from __future__ import annotations

import os

from noetl_site import logs

logconfig_dict = logs.gunicorn_logging_config(
    os.environ.get("NOETL_LOG_FORMAT", "auto")
)
