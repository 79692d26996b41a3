"""API keys: who may call the server, and what each key may do.

A key is a bearer token (``Authorization: Bearer KEY``) with a *scope*:

- ``read``: ask questions (``/v1/chat/completions``), list models, read ``/metrics``;
- ``write``: everything ``read`` may, and change the server's state: upsert or delete knowledge
  documents, reload adapters.

Keys come from the environment variable ``RAGTUNE_API_KEYS`` (``"key1:write,key2:read"``) and
from a keys file (one ``KEY SCOPE`` a line, ``#`` starts a comment); both may be used, and the
keys add up. With no key at all the server is open, which ``ragtune serve`` allows only on a
loopback address.

Presented keys are compared with :func:`hmac.compare_digest` against every configured key, so
the time a check takes does not tell how much of a guess was right. Each endpoint names the scope
it needs with :func:`require_scope`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request as HTTPRequest

from ragtune.errors import RagtuneError
from ragtune.server.errors import ApiError

__all__ = [
    "KEYS_ENV",
    "SCOPES",
    "ApiKeys",
    "AuthError",
    "Scope",
    "is_loopback",
    "load_keys",
    "parse_keys_env",
    "parse_keys_file",
    "require_scope",
]

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
KEYS_ENV = "RAGTUNE_API_KEYS"
"""The environment variable holding ``key:scope`` pairs, comma-separated."""


class AuthError(RagtuneError):
    """The configured keys cannot be read: names the source, the line and what is wrong."""


@dataclass(frozen=True)
class ApiKeys:
    """The keys a server accepts, each with its scope.

    Attributes:
        keys: Key -> scope. Empty: no authentication (loopback only).
    """

    keys: Mapping[str, Scope] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self.keys)

    def scope_of(self, presented: str) -> Scope | None:
        """The scope of a presented key, or None when it is not one of the keys.

        Every configured key is compared (in constant time each), whatever matched before.
        """
        given = presented.encode("utf-8")
        found: Scope | None = None
        for key, scope in self.keys.items():
            if hmac.compare_digest(given, key.encode("utf-8")):
                found = scope
        return found


def _scope(value: str, where: str) -> Scope:
    for scope in SCOPES:
        if value == scope:
            return scope
    raise AuthError(f"{where}: scope {value!r} is not one of: read, write.")


def _add(keys: dict[str, Scope], key: str, scope: Scope, where: str) -> None:
    if not key or any(c.isspace() for c in key):
        raise AuthError(f"{where}: a key must be one word without spaces, got {key!r}.")
    if key in keys and keys[key] != scope:
        raise AuthError(
            f"{where}: the same key is given twice, with scopes {keys[key]} and {scope}."
        )
    keys[key] = scope


def parse_keys_env(value: str) -> dict[str, Scope]:
    """Keys from ``RAGTUNE_API_KEYS``: ``key1:write,key2:read``.

    Raises:
        AuthError: An entry without a scope, or with a scope other than read/write.
    """
    keys: dict[str, Scope] = {}
    for n, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, scope = entry.rpartition(":")
        where = f"{KEYS_ENV} entry {n}"
        if not sep:
            raise AuthError(
                f"{where} has no scope: write it as KEY:read or KEY:write "
                f"(for example {KEYS_ENV}='k1:write,k2:read')."
            )
        _add(keys, key.strip(), _scope(scope.strip(), where), where)
    return keys


def parse_keys_file(path: Path) -> dict[str, Scope]:
    """Keys from a file: one ``KEY SCOPE`` a line; blank lines and ``#`` comments are skipped.

    Raises:
        AuthError: The file cannot be read, or a line is not ``KEY SCOPE`` (names the line).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(f"{path}: cannot read the keys file: {exc}") from exc
    keys: dict[str, Scope] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{path}, line {n}"
        if len(words) != 2:
            raise AuthError(
                f"{where}: expected 'KEY SCOPE' (scope read or write), got {len(words)} "
                f"word{'s' if len(words) != 1 else ''}."
            )
        _add(keys, words[0], _scope(words[1], where), where)
    return keys


def load_keys(keys_file: Path | None = None, environ: Mapping[str, str] | None = None) -> ApiKeys:
    """The keys from ``RAGTUNE_API_KEYS`` and, when given, a keys file, together.

    Raises:
        AuthError: Either source is malformed, or they give one key two scopes.
    """
    env = os.environ if environ is None else environ
    keys = parse_keys_env(env.get(KEYS_ENV, ""))
    if keys_file is not None:
        for key, scope in parse_keys_file(keys_file).items():
            _add(keys, key, scope, f"{keys_file} and {KEYS_ENV}")
    return ApiKeys(keys)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_bearer = HTTPBearer(auto_error=False, description="An API key with read or write scope.")


def require_scope(keys: ApiKeys, needed: Scope) -> Any:
    """A dependency that lets a request through when its key has the ``needed`` scope."""

    async def check(
        request: HTTPRequest,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not keys.enabled:
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise ApiError(
                401,
                "this server needs an API key: send it as 'Authorization: Bearer KEY' (the "
                "openai client's api_key).",
                type="authentication_error",
                code="missing_api_key",
                headers=challenge,
            )
        scope = keys.scope_of(credentials.credentials)
        if scope is None:
            raise ApiError(
                401,
                "the API key is not valid: check it against the keys the server was started with "
                "(RAGTUNE_API_KEYS or its --keys-file).",
                type="authentication_error",
                code="invalid_api_key",
                headers=challenge,
            )
        if needed == "write" and scope != "write":
            raise ApiError(
                403,
                f"this key has read scope; {request.method} {request.url.path} changes the "
                "server's state and needs a key with write scope.",
                type="permission_error",
                code="insufficient_scope",
            )

    return Depends(check)
