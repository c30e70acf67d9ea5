"""A playbook's ``keychain`` (DSL section 8), resolved on the worker.

Each entry is resolved the first time a template reads ``keychain.<name>``
and kept for the rest of the command, so a playbook that declares entries it
never uses runs offline. Resolved values exist only in the worker: they are
never put into events, and the runner masks each of them out of its report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Render = Callable[[Any], Any]
CredentialLookup = Callable[[str], dict[str, Any]]

_TOKEN_TIMEOUT_S = 30.0


class KeychainError(Exception):
    """An entry cannot be resolved; the message names the entry and why."""


class Keychain(Mapping[str, Any]):
    """The declared entries by name, each resolved on first read."""

    def __init__(
        self,
        entries: list[dict[str, Any]],
        credential: CredentialLookup,
        render: Render,
        reveal: Callable[[str], None],
    ) -> None:
        self._entries = {entry["name"]: entry for entry in entries}
        self._credential = credential
        self._render = render
        self._reveal = reveal
        self._resolved: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._resolved:
            return self._resolved[name]
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(name)
        try:
            value = self._resolve(entry)
        except KeychainError as exc:
            raise KeychainError(f"keychain entry {name!r}: {exc}") from None
        for secret in _sensitive(entry.get("kind") or "static", value):
            self._reveal(secret)
        self._resolved[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _resolve(self, entry: dict[str, Any]) -> Any:
        kind = entry.get("kind") or "static"
        if kind == "static":
            return self._render(entry.get("map") or {})
        if kind in ("credential", "postgres_credential"):
            return self._stored(entry)
        if kind == "bearer":
            if entry.get("token") is None:
                return {"token": self._stored(entry).get("token")}
            return {"token": self._render(entry["token"])}
        if kind == "oauth2":
            return self._oauth2(entry)
        if kind in ("secrets", "secret_manager"):
            return self._secrets(entry)
        raise KeychainError(f"kind {kind!r} is not supported by this NoETL version")

    def _stored(self, entry: dict[str, Any]) -> dict[str, Any]:
        name = self._render(
            entry.get("credential") or entry.get("key") or entry.get("auth")
            or entry["name"]
        )
        try:
            return dict(self._credential(str(name)))
        except Exception as exc:  # the lookup's own message says what is wrong
            raise KeychainError(str(exc)) from None

    def _secrets(self, entry: dict[str, Any]) -> dict[str, Any]:
        provider = entry.get("provider") or "env"
        if provider != "env":
            raise KeychainError(
                f"secret provider {provider!r} is not available here (only 'env')"
            )
        found = {}
        for field, variable in (self._render(entry.get("map") or {})).items():
            if variable not in os.environ:
                raise KeychainError(f"environment variable {variable!r} is not set")
            found[field] = os.environ[variable]
        return found

    def _oauth2(self, entry: dict[str, Any]) -> Any:
        endpoint = self._render(entry.get("endpoint") or "")
        if not endpoint:
            raise KeychainError("an oauth2 entry needs an 'endpoint'")
        method = str(self._render(entry.get("method") or "POST")).upper()
        headers = self._render(entry.get("headers") or {})
        data = self._render(entry.get("data") or {})
        form = "json" not in str(headers.get("Content-Type", "")).lower()
        import httpx  # only a token request needs it (and it is slow to import)

        try:
            response = httpx.request(
                method, endpoint, headers=headers, timeout=_TOKEN_TIMEOUT_S,
                **({"data": data} if form else {"json": data}),
            )
        except httpx.HTTPError as exc:
            raise KeychainError(f"token request to {endpoint} failed: {exc}") from None
        if response.status_code >= 400:
            raise KeychainError(
                f"token request to {endpoint} answered {response.status_code}"
            )
        try:
            return response.json()
        except ValueError:
            raise KeychainError(f"token response from {endpoint} is not JSON") from None


def _sensitive(kind: str, value: Any) -> set[str]:
    """What to mask of a resolved entry: the secret fields of a credential or
    a token response (not, say, its ``token_type``), every string otherwise."""
    from workers.masking import secret_strings

    if kind in ("credential", "postgres_credential", "oauth2") and isinstance(
        value, Mapping
    ):
        return secret_strings(dict(value))
    return _strings(value)


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if len(value) >= 4 else set()
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        found: set[str] = set()
        for item in value:
            found |= _strings(item)
        return found
    return set()
