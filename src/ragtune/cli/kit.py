"""What every command of the CLI shares: the consoles, the debug switch, the way errors print."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    from ragtune.project import Project

console = Console()
errors = Console(stderr=True)
state = {"debug": False, "quiet": False}

ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project", "-p", help="The project folder or its ragtune.yaml (default: current folder)."
    ),
]
ProjectArgument = Annotated[
    Path | None,
    typer.Argument(
        help="The project folder or its ragtune.yaml (default: the current folder); "
        "-p/--project works too.",
        show_default=False,
    ),
]
ProjectFlag = Annotated[
    Path | None,
    typer.Option(
        "--project", "-p", help="The project, as an option, as the other commands take it."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def fail(exc: RagtuneError) -> NoReturn:
    """Print a user error as one paragraph and exit with its code (2); re-raise under --debug."""
    if state["debug"]:
        raise exc
    # The message is plain text: brackets in it (a file name, `ragtune[knowledge]`) are not markup.
    errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def either_project(argument: Path | None, flag: Path | None) -> Path | None:
    """The project a command was given as its argument or with -p/--project (not two)."""
    if argument is not None and flag is not None and argument.resolve() != flag.resolve():
        raise typer.BadParameter(
            f"two projects given: {argument} and -p {flag}; name one", param_hint="PROJECT"
        )
    return argument if argument is not None else flag


def project_or_fail(target: Path | None) -> Project:
    """Load the project a command names, or print why it cannot be loaded and exit with 2."""
    from ragtune.project import load_project

    try:
        return load_project(target)
    except RagtuneError as exc:
        fail(exc)


def secondary_process() -> bool:
    """True in every process but the first of a multi-process launch (`accelerate launch`,
    torchrun: RANK above 0); those train their share and leave the output to the first."""
    return os.environ.get("RANK", "0") not in ("", "0")


@contextmanager
def training_bar(label: str, *, quiet: bool) -> Iterator[Callable[[int, int, float], None]]:
    """A Rich progress bar with the loss and the time left, on stderr; yields the trainer's
    progress callback. Where stderr is not a terminal (a log file, a CI job), where a bar shows
    nothing, a plain line every tenth of the steps says the step, the loss and the time taken."""
    import time

    from rich import progress as bars

    silent = quiet or state["quiet"] or secondary_process()
    plain = not silent and not errors.is_terminal
    started = time.monotonic()
    with bars.Progress(
        bars.TextColumn(f"[bold]{label}[/]"), bars.BarColumn(), bars.MofNCompleteColumn(),
        bars.TextColumn("loss {task.fields[loss]}"), bars.TimeElapsedColumn(),
        bars.TextColumn("left"), bars.TimeRemainingColumn(),
        console=errors, transient=True, disable=silent,
    ) as bar:  # fmt: skip
        task = bar.add_task("", total=None, loss="-")

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=f"{loss:.3f}")
            if plain and (step == total or step % max(1, total // 10) == 0):
                minutes, seconds = divmod(int(time.monotonic() - started), 60)
                errors.print(
                    f"{label}: step {step}/{total}, loss {loss:.3f}, {minutes}:{seconds:02d}",
                    markup=False,
                    highlight=False,
                )

        yield progress
