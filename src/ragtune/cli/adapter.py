"""``ragtune adapter ...``: train, list, show and remove LoRA adapters (thin over behavior/)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ragtune.cli.kit import (
    JsonOption,
    ProjectOption,
    console,
    fail,
    project_or_fail,
    secondary_process,
    training_bar,
)
from ragtune.errors import RagtuneError
from ragtune.extras import require

adapter_app = typer.Typer(
    help=(
        "Behaviour in weights: train a small LoRA adapter for a capability whose behaviour must "
        "hold across thousands of calls, and manage the adapters.\n\n"
        "Training refuses examples that teach facts (prices, dates, names absent from the "
        "inputs): move those to retrieval, or pass --allow-knowledge."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@adapter_app.command("train")
def train_command(
    capability: Annotated[str, typer.Argument(help="The capability whose examples to learn.")],
    project: ProjectOption = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Optimiser steps (overrides epochs).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Passes over the training split.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    max_length: Annotated[
        int | None, typer.Option("--max-length", help="Tokens per example.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Makes a run repeatable.")] = None,
    eval_tokens: Annotated[
        int | None,
        typer.Option("--eval-tokens", help="Tokens generated per held-out example (0: skip)."),
    ] = None,
    context: Annotated[
        bool | None,
        typer.Option(
            "--context/--no-context",
            help="Train with retrieved context (RAFT); on by default when the capability has "
            "context_from.",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint.")] = False,
    allow_knowledge: Annotated[
        bool,
        typer.Option("--allow-knowledge", help="Train even if the examples teach facts."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Train a LoRA adapter on a capability's examples (PEFT, CPU by default).

    The loss is on the completion only; a held-out split is evaluated with the base model and
    with the adapter (output-contract compliance, exact match); the adapter becomes active only
    when training and evaluation finished - an interrupted run leaves the previous one in place.

    Settings come from the capability's `train:` in ragtune.yaml (documented defaults
    otherwise); the options here override them for this run.

    Example: `ragtune adapter train risk_flags -p my-review --steps 200`
    """

    from ragtune.adapters import TrainConfig
    from ragtune.behavior.capability import capability_of, train_capability
    from ragtune.behavior.staleness import train_config_for

    loaded = project_or_fail(project)
    try:
        require("train", "training an adapter")
        given = {
            "max_steps": steps, "epochs": epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "max_length": max_length, "seed": seed,
            "eval_max_new_tokens": eval_tokens,
            "context_passages": 0 if context is False else None,
        }  # fmt: skip
        base = train_config_for(loaded, capability_of(loaded, capability)).to_dict()
        config = TrainConfig(**{**base, **{k: v for k, v in given.items() if v is not None}})
        with training_bar("training", quiet=as_json) as progress:
            done = train_capability(
                loaded, capability, config, allow_knowledge=allow_knowledge, resume=resume,
                progress=progress,
            )  # fmt: skip
    except RagtuneError as exc:
        fail(exc)
    result = done.result
    if secondary_process():  # under `accelerate launch`: the first process reports
        return
    from ragtune.generate.remote_adapters import register_adapters

    try:  # with model.server: the server takes the new adapter (a failure keeps it trained)
        registered, refused = register_adapters(loaded, [done.capability]), None
    except RagtuneError as exc:
        registered, refused = [], exc
    if as_json:
        payload = {**done.summary(), "registered": [asdict(r) for r in registered]}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        if refused is not None:
            fail(refused)
        return
    console.print(
        f"adapter {done.capability}: {result.steps} steps, loss {result.final_loss:.3f}, "
        f"{result.seconds_per_step:.2f} s/step, {result.size_bytes / 1e6:.1f} MB at {result.path}"
    )
    if done.context is not None:
        ctx = done.context
        console.print(
            f"  trained with retrieved context from {', '.join(ctx.capabilities)} (snapshot "
            f"{ctx.snapshot}): {ctx.settings.passages} passages an example, the relevant one "
            f"in {ctx.with_oracle}; {len(ctx.quoted)} distinct chunks quoted"
        )
    for label, metrics in (("base", result.base), ("adapter", result.adapter)):
        if metrics is not None:
            compliance = "-" if metrics.compliance is None else f"{metrics.compliance:.0%}"
            guided = (
                ""
                if metrics.guided_compliance is None
                else f" ({metrics.guided_compliance:.0%} guided)"
            )
            console.print(
                f"  {label:8} exact match {metrics.exact_match:.0%}, contract compliance "
                f"{compliance}{guided} on {metrics.examples} held-out examples"
            )
    for registration in registered:
        console.print(registration.describe(), highlight=False)
    if refused is not None:
        fail(refused)


@adapter_app.command("list")
def list_command(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List the trained adapters with their base model, data and metrics."""
    from ragtune.adapters import list_adapters

    loaded = project_or_fail(project)
    try:
        adapters = list_adapters(loaded.adapters_dir)
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        rows = [{"name": a.name, "path": str(a.path), "size_bytes": a.size_bytes} for a in adapters]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not adapters:
        console.print("no adapters yet: `ragtune adapter train CAPABILITY`")
    for a in adapters:
        trained = a.manifest.created_at or str(a.manifest.extra.get("time") or "")
        console.print(
            f"[bold]{a.name}[/]  {a.size_bytes / 1e6:.1f} MB  {trained}  [dim]{a.path}[/]"
        )


@adapter_app.command("show")
def show_command(name: str, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Show an adapter: what it was made from (base model, examples, settings, knowledge) and
    how it scored against the base model; --json prints its manifest (ragtune.json) whole."""
    from ragtune.adapters import load_manifest

    loaded = project_or_fail(project)
    try:
        manifest = load_manifest(loaded.adapters_dir, name)
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(manifest.to_dict(), indent=2, default=str) + "\n")
        return
    base, data, run = manifest.base_model, manifest.dataset, manifest.training
    rows = [
        ("base model", f"{base.name or '?'} ({(base.sha256 or '?')[:12]})"),
        ("examples", f"{data.path or '?'}: {data.train} trained on, {data.held_out} held out"
         + (f", {data.truncated} cut at max_length" if data.truncated else "")),
        ("training", f"{run.steps} steps"
         + (f" in {run.seconds / 60:.1f} min" if run.seconds else "")
         + (f", {run.tokens_per_second:.0f} tokens/s" if run.tokens_per_second else "")
         + (f", final loss {run.final_loss:.3f}" if run.final_loss is not None else "")
         + (f" on {run.device}" if run.device else "")),
        ("settings", ", ".join(f"{k} {manifest.config[k]}" for k in
                               ("r", "alpha", "epochs", "learning_rate", "batch_size")
                               if k in manifest.config)),
    ]  # fmt: skip
    for label, score in (("base", manifest.base_metrics), ("adapter", manifest.adapter_metrics)):
        if score is not None:
            compliance = "n/a" if score.compliance is None else f"{score.compliance:.0%}"
            rows.append((f"{label} on held-out", f"{score.examples} examples, exact match "
                         f"{score.exact_match:.0%}, contract compliance {compliance}"))  # fmt: skip
    if manifest.context is not None:
        rows.append(("context", f"retrieved passages of snapshot {manifest.context.snapshot}"))
    rows.append(("llama.cpp", f"adapter.gguf {manifest.gguf_lora[:12]}" if manifest.gguf_lora
                 else "no GGUF copy (served by transformers only)"))  # fmt: skip
    rows.append(("trained", f"{manifest.created_at or '?'} by ragtune {manifest.ragtune_version}"))
    console.print(f"[bold]{name}[/]  [dim]{loaded.adapters_dir / name}[/]")
    for label, value in rows:
        console.print(f"  {label:<20} {value}", highlight=False)


@adapter_app.command("rm")
def rm_command(name: str, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Remove an adapter (and any checkpoint of an unfinished run)."""
    from ragtune.adapters import remove_adapter

    loaded = project_or_fail(project)
    try:
        path = remove_adapter(loaded.adapters_dir, name)
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps({"removed": name, "path": str(path)}) + "\n")
        return
    console.print(f"removed {path}")


@adapter_app.command("import")
def import_command(
    folder: Annotated[
        Path,
        typer.Argument(help="A PEFT LoRA folder (adapter_config.json, adapter_model.safetensors)."),
    ],
    name: Annotated[
        str, typer.Option("--name", help="The adapter's name: the capability it serves.")
    ],
    project: ProjectOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an adapter of that name.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Bring in a PEFT LoRA adapter that ragtune did not train.

    Each LoRA matrix is checked against the project's base model (an adapter of another model is
    refused, naming the layer and both shapes); the adapter is written as a GGUF LoRA for the
    llama.cpp backend too, and its manifest says where it came from.

    Example: `ragtune adapter import ./my-peft-run --name risk_flags -p my-review`
    """
    from ragtune.behavior.adapter_import import import_adapter

    loaded = project_or_fail(project)
    try:
        made = import_adapter(loaded, folder, name, force=force)
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        payload = {
            "name": name,
            "path": str(made.path),
            "layers": made.layers,
            **made.manifest.to_dict(),
        }
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    gguf = "with a GGUF LoRA for llama.cpp" if made.manifest.gguf_lora else "PEFT weights only"
    console.print(f"imported {name}: {made.layers} layers, {gguf}, at {made.path}")


@adapter_app.command("register")
def register_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Adapters to register (default: all).")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register the project's adapters with its server (`model.server`: vllm loads each through
    /v1/load_lora_adapter; llama.cpp and llama-cpp-python are checked to hold each).

    `ragtune build` does this for each adapter it trains; run it when that failed (the server
    was down) or after the server restarted.

    Example: `ragtune adapter register risk_flags -p my-review`
    """
    from ragtune.adapters import list_adapters
    from ragtune.generate.remote_adapters import register_adapters

    loaded = project_or_fail(project)
    try:
        if loaded.config.model.server is None or loaded.config.model.backend != "openai":
            raise RagtuneError(
                "no server to register with: set model.backend: openai, model.base_url and "
                "model.server (vllm, llama.cpp or llama-cpp-python) in ragtune.yaml."
            )
        wanted = names or [a.name for a in list_adapters(loaded.adapters_dir)]
        registered = register_adapters(loaded, wanted)
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps([asdict(r) for r in registered], indent=2) + "\n")
        return
    if not registered:
        console.print("no adapters yet: `ragtune adapter train CAPABILITY`")
    for registration in registered:
        console.print(registration.describe(), highlight=False)


@adapter_app.command("serve-command")
def serve_command_command(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="vllm, llama.cpp (llama-server) or llama-cpp-python (default: model.server).",
        ),
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the command that starts a server with the project's adapters, listening where
    model.base_url points: `vllm serve BASE --enable-lora --lora-modules name=path ...`,
    `llama-server -m BASE.gguf --lora a.gguf ...`, or `python -m llama_cpp.server --config_file
    FILE` (the file, one model alias per adapter, is written into .ragtune/).

    Example: `ragtune adapter serve-command --server vllm -p my-review`
    """
    from ragtune.generate.remote_adapters import serve_command

    loaded = project_or_fail(project)
    try:
        command = serve_command(loaded, server)
    except RagtuneError as exc:
        fail(exc)
    if command.config is not None and command.config_path is not None:
        command.config_path.parent.mkdir(parents=True, exist_ok=True)
        command.config_path.write_text(json.dumps(command.config, indent=2) + "\n")
    if as_json:
        payload = {**asdict(command), "shell": command.shell()}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    sys.stdout.write(command.shell() + "\n")
    if command.config_path is not None:
        console.print(f"# its config file: {command.config_path}", highlight=False)
    for name, why in command.skipped:
        console.print(f"# left out {name}: {why}", highlight=False)
    for note in command.notes:
        console.print(f"# {note}", highlight=False)
