"""What every command of the CLI shares: the consoles, the debug switch, the way errors print."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from ragtune.errors import RagtuneError

console = Console()
errors = Console(stderr=True)
state = {"debug": False}


def fail(exc: RagtuneError) -> NoReturn:
    """Print a user error as one paragraph and exit with its code (2); re-raise under --debug."""
    if state["debug"]:
        raise exc
    errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)
