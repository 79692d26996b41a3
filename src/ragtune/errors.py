"""Errors a user can act on: each names the file, line or field, the bad value and what would do."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


class RagtuneError(Exception):
    """A problem with the user's input; the CLI prints it as one paragraph and exits with 2."""

    exit_code = 2


class ProjectError(RagtuneError):
    """The project file cannot be read, parsed or validated."""


def closest(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The choice most like ``word`` (for a "did you mean" hint), or None when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def redact_url(location: str) -> str:
    """A URL without its password and query (where keys hide), for messages and logs: a
    server's API root or a store's ``postgresql://`` URL. Anything else (a file path) is
    returned as it is."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user = credentials.split(":", 1)[0]
        netloc = f"{user}{':***' if ':' in credentials else ''}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
