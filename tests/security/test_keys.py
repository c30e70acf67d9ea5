"""Encryption key rotation: old keys still decrypt, new writes use the
newest key, and ``rotatekeys`` re-encrypts everything."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from credentials import crypto
from credentials.models import Credential, KeychainEntry
from credentials.store import (
    read_credential,
    read_keychain_entry,
    save_credential,
    save_keychain_entry,
)
from workers.tools.base import CredentialError

pytestmark = pytest.mark.django_db
OLD = crypto.generate_key()
NEW = crypto.generate_key()


@pytest.fixture(autouse=True)
def _forget_keys() -> Any:
    yield
    crypto.current_key.cache_clear()


def _use(settings: Any, current: str, old: list[str]) -> str:
    settings.NOETL_ENCRYPTION_KEY = current
    settings.NOETL_ENCRYPTION_OLD_KEYS = old
    crypto.current_key.cache_clear()
    return crypto.current_key()[0]


def test_rotation_keeps_old_data_readable_and_rewrites_it_under_the_new_key(
    settings: Any,
) -> None:
    old_id = _use(settings, OLD, [])
    save_credential("pg", "postgres", {"password": "old-secret"})
    entry = save_keychain_entry("oauth", {"access_token": "old-token"})

    new_id = _use(settings, NEW, [OLD])
    assert new_id != old_id
    assert read_credential("pg")["password"] == "old-secret"
    save_credential("api", "bearer", {"token": "new-token"})
    assert Credential.objects.get(name="api").key_id == new_id
    assert Credential.objects.get(name="pg").key_id == old_id

    out = StringIO()
    call_command("rotatekeys", stdout=out)
    assert "re-encrypted 1 credential and 1 keychain entry" in out.getvalue()
    assert set(Credential.objects.values_list("key_id", flat=True)) == {new_id}
    assert KeychainEntry.objects.get().key_id == new_id

    # The old key can go now; everything still reads.
    _use(settings, NEW, [])
    assert read_credential("pg")["password"] == "old-secret"
    assert read_keychain_entry(KeychainEntry.objects.get(pk=entry.pk)) == {
        "access_token": "old-token"
    }
    again = StringIO()
    call_command("rotatekeys", stdout=again)
    assert "re-encrypted 0 credentials and 0 keychain entries" in again.getvalue()


def test_data_under_a_key_no_longer_configured_says_which_setting_to_fix(
    settings: Any,
) -> None:
    _use(settings, OLD, [])
    save_credential("pg", "postgres", {"password": "old-secret"})
    _use(settings, NEW, [])
    with pytest.raises(CredentialError, match="NOETL_ENCRYPTION_OLD_KEYS"):
        read_credential("pg")
    with pytest.raises(CommandError, match="NOETL_ENCRYPTION_OLD_KEYS"):
        call_command("rotatekeys", stdout=StringIO())


def test_the_development_key_is_warned_about_once_per_process(
    settings: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.NOETL_ENCRYPTION_KEY = ""
    settings.NOETL_HOME = str(tmp_path / "home")
    crypto.current_key.cache_clear()

    # Worker threads all want the key as a run starts.
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(lambda _: crypto.current_key()[0], range(32)))
    crypto.current_key.cache_clear()
    ids.add(crypto.current_key()[0])

    assert len(ids) == 1
    warned = [r for r in caplog.records if "NOETL_ENCRYPTION_KEY is not set" in r.message]
    assert len(warned) == 1
    key_file = tmp_path / "home" / "encryption.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
