"""The ``ragtune`` command line: each command parses, calls one library function, prints.

One module per part of the user's loop: :mod:`~ragtune.cli.project` (init, schema, audit),
:mod:`~ragtune.cli.build` (plan, build), :mod:`~ragtune.cli.knowledge`,
:mod:`~ragtune.cli.adapter`, :mod:`~ragtune.cli.runtime` (ask, serve), :mod:`~ragtune.cli.lab`
and :mod:`~ragtune.cli.demo`; :mod:`~ragtune.cli.kit` holds what every command shares.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ragtune import __version__
from ragtune.cli.adapter import adapter_app
from ragtune.cli.build import build_command, plan_command
from ragtune.cli.demo import demo_command
from ragtune.cli.doctor import doctor_command
from ragtune.cli.kit import console, state
from ragtune.cli.knowledge import knowledge_app
from ragtune.cli.lab import lab_command
from ragtune.cli.project import audit_command, init_command, schema_command
from ragtune.cli.runtime import ask_command, serve_command

app = typer.Typer(
    name="ragtune",
    help=(
        "Knowledge in context, behaviour in weights.\n\n"
        "ragtune decides, for each capability of an LLM application, between retrieval, "
        "few-shot prompting and a LoRA adapter - from two questions (does it change within six "
        "months? is it what the model knows or how it behaves?) and from evidence in your own "
        "files - and shows why and what each choice costs.\n\n"
        "Start with `ragtune init` (or `ragtune init --example contract-review DIR`), then "
        "`ragtune audit DIR`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"ragtune {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print nothing but errors and --json output (no progress bars)."
        ),
    ] = False,
) -> None:
    """Knowledge in context, behaviour in weights."""
    state["debug"] = debug
    state["quiet"] = quiet
    console.quiet = quiet


# The commands join the app in the order of the user's loop.
app.command("init")(init_command)
app.command("schema")(schema_command)
app.command("audit")(audit_command)
app.command("plan")(plan_command)
app.command("build")(build_command)
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(adapter_app, name="adapter")
app.command("ask")(ask_command)
app.command("serve")(serve_command)
app.command("lab")(lab_command)
app.command("demo")(demo_command)
app.command("doctor")(doctor_command)


def quiet_libraries() -> None:
    """The CLI draws its own progress bars: the model libraries' own (``Loading weights``,
    downloads) and their advisory warnings stay off unless the environment asks for them."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # tqdm bars drawn by the libraries themselves (transformers' "Converting and de-quantizing
    # GGUF tensors"); ragtune's own bars are rich's, not tqdm's
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for library in ("transformers", "peft", "torch", "accelerate", "sentence_transformers"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=rf"{library}(\.|$)")
        warnings.filterwarnings("ignore", category=UserWarning, module=rf"{library}(\.|$)")


def main() -> None:
    """Console-script entry point. A package that an extra installs and this install lacks
    ends the command with the ``pip install`` line that fixes it (exit 2), not a traceback."""
    from ragtune.extras import missing_extra

    quiet_libraries()
    try:
        app()
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)
        if message is None or state.get("debug"):
            raise
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2) from None
