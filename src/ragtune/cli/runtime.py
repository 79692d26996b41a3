"""``ragtune ask`` and ``ragtune serve``: the runtime from the command line and over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ragtune.cli.kit import (
    JsonOption,
    ProjectArgument,
    ProjectFlag,
    ProjectOption,
    console,
    either_project,
    errors,
    fail,
    project_or_fail,
)
from ragtune.errors import RagtuneError
from ragtune.runtime.quote import QUOTED

if TYPE_CHECKING:
    from ragtune.project import Project
    from ragtune.runtime.runtime import Result, Runtime
    from ragtune.server import ServerSettings


def ask_command(
    question: Annotated[str, typer.Argument(help="The question or request, in quotes.")],
    project: ProjectOption = None,
    capability: Annotated[
        str | None,
        typer.Option(
            "--capability",
            "-c",
            help="The capability to serve it (default: the one whose description is closest).",
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Token budget of the answer.")
    ] = 256,
    as_json: JsonOption = False,
) -> None:
    """Ask one question through the runtime and show how it was answered.

    Prints the answer, the retrieved passages as numbered citations (document > section,
    version, snapshot; the ones the answer cites are marked), the route (capability, strategy,
    adapter, named or routed), the contract check and the time of each step.

    Example: `ragtune ask "How fast must a data breach be notified?" -c templates`
    """
    from ragtune.runtime.pipeline import run
    from ragtune.runtime.runtime import PipelineError, Request, Runtime

    loaded = project_or_fail(project)
    runtime: Runtime | None = None
    try:
        runtime = Runtime(loaded)
        # Bad input fails before any model loads; the models load before the request, so its
        # step timings are its own work and not the loading.
        if capability is not None:
            runtime.capability(capability)
        _warn_if_unsynced(runtime)
        if not question.strip():
            raise PipelineError("the question is empty: ask a question.")
        _load_models(runtime)
        result = run(runtime, Request(question, capability, max_tokens=max_tokens))
    except RagtuneError as exc:
        fail(exc)
    finally:
        if runtime is not None:
            runtime.close()
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    _print_result(result)


def _print_result(result: Result) -> None:
    console.print(result.text or "(empty answer)", markup=False, highlight=False)
    console.print()
    if result.passages:
        console.print("[bold]Citations[/]")
        for citation in result.citations():
            mark = "  [green]cited[/]" if citation["cited"] else ""
            number = escape(f"[{citation['number']}]")
            where = escape(f"{citation['document']} > {citation['section']}")
            console.print(
                f"  {number} {where}, version {citation['version']}, "
                f"snapshot {citation['snapshot']}{mark}",
                highlight=False,
                soft_wrap=True,
            )
    r = result.route
    how = "routed" if r.how == "routed" else "named"
    if r.score is not None:
        how += f" (similarity {r.score:.2f})"
    served = "no model" if result.model == QUOTED else f"adapter {r.adapter or 'none (base model)'}"
    served += "".join(f" · {name} by the classifier" for name in result.classified)
    console.print(
        f"[bold]Route[/]: {escape(r.capability)} · {r.strategy} · {escape(served)} · {how}"
        + (f" · knowledge from {escape(', '.join(r.knowledge))}" if r.knowledge else ""),
        highlight=False,
        soft_wrap=True,
    )
    if result.unsupported is not None:
        console.print(
            "[bold]Support[/]: [yellow]the reader's answer was not supported by its passages"
            f"[/] (quoted instead): {escape(result.unsupported)}",
            highlight=False,
            soft_wrap=True,
        )
    elif result.supported is False:
        console.print(
            "[bold]Support[/]: [yellow]not supported by its passages[/]",
            highlight=False,
            soft_wrap=True,
        )
    if result.contract_ok is not None:
        verdict = "[green]ok[/]" if result.contract_ok else "[red]violated[/]"
        detail = f": {escape('; '.join(result.contract_errors))}" if result.contract_errors else ""
        repaired = " (after one repair)" if result.repaired else ""
        console.print(
            f"[bold]Contract[/]: {verdict}{repaired}{detail}", highlight=False, soft_wrap=True
        )
    steps = " · ".join(
        f"{step} {seconds:.3f} s" for step, seconds in result.timings.items() if step != "total"
    )
    total = result.timings.get("total", 0.0)
    console.print(
        f"[bold]Timings[/]: {steps} · total {total:.2f} s", highlight=False, soft_wrap=True
    )
    console.print(
        f"[bold]Tokens[/]: {result.prompt_tokens} prompt + {result.completion_tokens} "
        f"completion, finish {result.finish_reason}, model {escape(result.model)}",
        highlight=False,
        soft_wrap=True,
    )


def _load_models(runtime: Runtime) -> None:
    """Load the embedder and the generation backend now, saying so on stderr."""
    with errors.status("loading the embedder and the base model ..."):
        runtime.embedder  # noqa: B018 - loads on first access
        runtime.backend  # noqa: B018


def _warn_if_unsynced(runtime: Runtime) -> None:
    """Say so when knowledge capabilities would be served from an empty store."""
    from ragtune.knowledge.tools import is_tool_ref

    has_documents = any(
        not is_tool_ref(ref) for c in runtime.capabilities.values() for ref in c.sources
    )
    if has_documents and runtime.knowledge.store.latest_snapshot() == 0:
        errors.print(
            "[yellow]warning:[/] the knowledge store is empty, so knowledge capabilities answer "
            f"without passages. Run `ragtune knowledge sync -p {runtime.project.root}` (or "
            "`ragtune build`) first.",
            highlight=False,
            soft_wrap=True,
        )


def serve_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to bind; beyond loopback, API keys are required."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    keys_file: Annotated[
        Path | None,
        typer.Option(
            "--keys-file",
            help="API keys, one 'KEY SCOPE' a line (scope read or write; # comments); adds to "
            "RAGTUNE_API_KEYS ('key1:write,key2:read').",
        ),
    ] = None,
    queue: Annotated[
        int,
        typer.Option(
            "--queue",
            min=1,
            help="Generation requests admitted at once (over all workers); more get 503.",
        ),
    ] = 8,
    max_tokens_limit: Annotated[
        int, typer.Option("--max-tokens-limit", min=1, help="The most max_tokens a request gets.")
    ] = 1024,
    default_max_tokens: Annotated[
        int,
        typer.Option(
            "--default-max-tokens", min=1, help="max_tokens of a request that names none."
        ),
    ] = 256,
    max_messages: Annotated[
        int, typer.Option("--max-messages", min=1, help="The most messages in one request.")
    ] = 128,
    max_prompt_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-prompt-tokens",
            min=1,
            help="The most prompt tokens (default: what model.context_tokens holds beside "
            "max_tokens; a remote backend: no limit).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.001, help="Seconds a request may take (then 504)."),
    ] = 120.0,
    max_body_bytes: Annotated[
        int,
        typer.Option("--max-body-bytes", min=1, help="The largest request body (then 413)."),
    ] = 1024 * 1024,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes on the port, sharing the store, adapter reloads and "
            "/metrics. Each loads its own copy of the model (memory x N) and admits "
            "--queue / N generation requests.",
        ),
    ] = 1,
) -> None:
    """Serve the project over HTTP: an OpenAI-compatible API plus knowledge and adapter endpoints.

    `POST /v1/chat/completions` takes a capability as `model` (or `auto`); `PUT` and `DELETE
    /v1/knowledge/documents/PATH` change a knowledge document and sync it at once (no restart,
    no retraining); `POST /v1/adapters/NAME/reload` serves a retrained adapter; `GET /metrics`
    speaks Prometheus.

    With `--workers N`, N processes serve the port. They share the knowledge store (a document
    written through one is served by all on their next request), adapter reloads (recorded in
    .ragtune/reloads/, each worker reloads before its next request with that adapter) and
    /metrics (Prometheus multiprocess mode: counters summed over the workers). The queue is
    split: each worker admits --queue / N requests (rounded down), so the server never admits
    more than --queue and no more than a share waits behind one model. Each worker loads its
    own model copy: memory grows N times.

    API keys (bearer tokens with read or write scope) come from RAGTUNE_API_KEYS and
    --keys-file. Without keys the server is open, so it then refuses to bind anything but a
    loopback address.

    Example: `RAGTUNE_API_KEYS=s3cret:write ragtune serve my-review --host 0.0.0.0`
    """
    project = either_project(project, project_flag)
    from ragtune.server import ServerSettings, is_loopback, load_keys

    try:
        keys = load_keys(keys_file)
        if not keys.enabled and not is_loopback(host):
            raise RagtuneError(
                f"refusing to serve on {host} without API keys: anyone who can reach it could "
                "read and change the knowledge. Set RAGTUNE_API_KEYS='KEY:write' or pass "
                "--keys-file FILE (one 'KEY SCOPE' a line), or bind --host 127.0.0.1."
            )
        settings = ServerSettings(
            keys=keys,
            queue_depth=queue,
            max_tokens_limit=max_tokens_limit,
            default_max_tokens=default_max_tokens,
            max_messages=max_messages,
            max_prompt_tokens=max_prompt_tokens,
            timeout_s=timeout,
            max_body_bytes=max_body_bytes,
        )
        if workers > 1:
            from ragtune.server.workers import queue_share

            queue_share(queue, workers)  # refuses fewer places than workers
    except RagtuneError as exc:
        fail(exc)
    loaded = project_or_fail(project)
    if workers > 1:
        _serve_workers(loaded, host, port, settings, workers)
    else:
        _serve(loaded, host, port, settings)


def _serve(loaded: Project, host: str, port: int, settings: ServerSettings) -> None:
    """Build the runtime, load the model, and run the app under uvicorn until stopped."""
    import uvicorn

    from ragtune.runtime.runtime import Runtime
    from ragtune.server import create_app

    runtime: Runtime | None = None
    try:
        runtime = Runtime(loaded)
        _warn_if_unsynced(runtime)
        _load_models(runtime)  # now, not on the first request (nor in its timings)
        app = create_app(runtime, settings)
        _say_serving(loaded, runtime, host, port, settings)
        uvicorn.run(app, host=host, port=port, log_level="info")
    except RagtuneError as exc:
        fail(exc)
    finally:
        if runtime is not None:
            runtime.close()


def _serve_workers(
    loaded: Project, host: str, port: int, settings: ServerSettings, workers: int
) -> None:
    """Check the project here, then run ``workers`` processes, each loading its own model."""
    from ragtune.runtime.runtime import Runtime
    from ragtune.server.workers import queue_share, run_workers

    try:
        runtime = Runtime(loaded)
        try:
            _warn_if_unsynced(runtime)
            share = queue_share(settings.queue_depth, workers)
            _say_serving(
                loaded, runtime, host, port, settings,
                f"{workers} workers, each with its own model and {share} queue places",
            )  # fmt: skip
        finally:
            runtime.close()
        run_workers(loaded.path, host, port, settings, workers)
    except RagtuneError as exc:
        fail(exc)


def _say_serving(
    loaded: Project,
    runtime: Runtime,
    host: str,
    port: int,
    settings: ServerSettings,
    how: str | None = None,
) -> None:
    """Print where the project is served, who may call it and its models."""
    where = f"[{host}]" if ":" in host else host
    access = (
        f"{len(settings.keys.keys)} API key(s) required"
        if settings.keys.enabled
        else "no API key (loopback only)"
    )
    models = ", ".join(runtime.capabilities)
    console.print(
        f"serving {escape(loaded.config.project or loaded.root.name)} on "
        f"http://{where}:{port}/v1 - {access}; models: {escape(models)}"
        + (f"; {escape(how)}" if how else ""),
        highlight=False,
    )
