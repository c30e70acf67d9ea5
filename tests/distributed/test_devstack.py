"""The development stack as a person starts it: its own secrets, and a UI one
can sign in to over plain http."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx

from noetl_site.devstack import DevStack
from tests.distributed.conftest import Driver


def test_each_stack_makes_its_own_key_and_keeps_it_private(
    stack: Driver, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("NOETL_ENCRYPTION_KEY", raising=False)
    key_file = stack.stack.home / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stack.stack.env["NOETL_ENCRYPTION_KEY"] == key_file.read_text().strip()
    # Kept across restarts of the same stack, never shared with another one.
    again = DevStack(database="unused", home=stack.stack.home)
    other = DevStack(database="unused", home=tmp_path / "other")
    assert again.env["NOETL_ENCRYPTION_KEY"] == stack.stack.env["NOETL_ENCRYPTION_KEY"]
    assert other.env["NOETL_ENCRYPTION_KEY"] != stack.stack.env["NOETL_ENCRYPTION_KEY"]


def test_the_printed_admin_password_signs_in_to_the_ui(stack: Driver) -> None:
    password = stack.stack.password
    assert password and (stack.stack.home / "admin-password").read_text() == password
    with httpx.Client(base_url=stack.stack.url, follow_redirects=True) as browser:
        form = browser.get("/api/auth/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert csrf, form.text[:500]
        signed_in = browser.post(
            "/api/auth/login/",
            data={"username": "admin", "password": password,
                  "csrfmiddlewaretoken": csrf.group(1)},
            headers={"Referer": f"{stack.stack.url}/api/auth/login/"},
        )
        assert signed_in.status_code == 200 and signed_in.url.path == "/"
        assert browser.get("/runs/").url.path == "/runs/"
