"""Errors a user can act on: each names the file, line or field, the bad value and what would do."""

from __future__ import annotations


class RagtuneError(Exception):
    """A problem with the user's input; the CLI prints it as one paragraph and exits with 2."""

    exit_code = 2


class ProjectError(RagtuneError):
    """The project file cannot be read, parsed or validated."""
