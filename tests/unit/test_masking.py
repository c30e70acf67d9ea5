"""Masking secrets in the shapes tools and user code echo them."""

from __future__ import annotations

import base64
import logging

from workers.masking import LogMasker, Masker, remember, secret_strings, shapes


def test_it_finds_secret_fields_and_the_password_inside_a_dsn() -> None:
    found = secret_strings(
        {
            "host": "db.internal",
            "user": "svc",
            "password": "hunter22",
            "dsn": "postgresql://svc:s3cr%40t@db/app",
            "extra": {"api_key": "k-123456"},
            "connection_string": "host=db password='quoted pw' user=svc",
        }
    )
    assert {"hunter22", "k-123456", "quoted pw"} <= found
    assert "s3cr%40t" in found or "s3cr@t" in found
    assert "db.internal" not in found and "svc" not in found
    assert base64.b64encode(b"svc:hunter22").decode() in found


def test_it_ignores_values_too_short_to_mask_safely() -> None:
    assert secret_strings({"password": "abc"}) == set()


def test_it_masks_escaped_and_quoted_shapes() -> None:
    secret = 'p@ss "word"/x'
    masker = Masker()
    masker.learn({"password": secret})
    assert shapes(secret) >= {secret, 'p@ss \\"word\\"/x', "p%40ss%20%22word%22%2Fx"}
    value = {
        "raw": f"saw {secret}",
        "url": "https://x/?pw=p%40ss+%22word%22%2Fx",
        "list": [secret],
    }
    assert masker.value(value) == {
        "raw": "saw ***",
        "url": "https://x/?pw=***",
        "list": ["***"],
    }
    assert masker.value({"n": 1}) == {"n": 1}


def test_log_records_lose_known_secrets_in_message_and_traceback() -> None:
    remember({"log-secret-42"})
    record = logging.LogRecord(
        "noetl.x",
        logging.ERROR,
        __file__,
        1,
        "connect failed: %s",
        ("log-secret-42",),
        None,
    )
    try:
        raise ValueError("log-secret-42")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert LogMasker().filter(record)
    assert record.getMessage() == "connect failed: ***"
    assert "log-secret-42" not in (record.exc_text or "")
