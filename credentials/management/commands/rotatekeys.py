"""``manage.py rotatekeys``: re-encrypt every credential and keychain entry
with the current NOETL_ENCRYPTION_KEY.

Rotation: put the new key in NOETL_ENCRYPTION_KEY and the old one in
NOETL_ENCRYPTION_OLD_KEYS, restart, run this command, then drop the old key.
Safe to run again: rows already under the current key are left alone.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts import audit
from credentials import crypto, store
from noetl_site.text import count


class Command(BaseCommand):
    help = "Re-encrypt every credential and keychain entry with the current key."

    def handle(self, *args: Any, **options: Any) -> None:
        key_id, _ = crypto.current_key()
        try:
            credentials, entries = store.reencrypt_all()
        except crypto.KeyError_ as exc:
            raise CommandError(
                f"{exc}. Add the key that wrote it to NOETL_ENCRYPTION_OLD_KEYS."
            ) from None
        audit.record(
            "keys.rotated", key_id, credentials=credentials, keychain_entries=entries
        )
        self.stdout.write(
            f"re-encrypted {count(credentials, 'credential')} and "
            f"{count(entries, 'keychain entry', 'keychain entries')} with key {key_id}"
        )
