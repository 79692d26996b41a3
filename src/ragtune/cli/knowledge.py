"""``ragtune knowledge ...``: thin commands over :mod:`ragtune.knowledge`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ragtune.cli.kit import (
    JsonOption,
    ProjectArgument,
    ProjectFlag,
    ProjectOption,
    console,
    either_project,
    errors,
    fail,
    state,
)
from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.knowledge.sync import Progress as SyncProgress
    from ragtune.knowledge.sync import SyncResult

knowledge_app = typer.Typer(
    help=(
        "Keep knowledge current: sync sources into the store, search them, see their history.\n\n"
        "Knowledge changes; weights do not. `sync` re-embeds only what changed and keeps every "
        "earlier version; `search` answers from the live text or `--as-of` an earlier snapshot."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@contextmanager
def _knowledge(project: Path | None) -> Iterator[KnowledgeBase]:
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.project import load_project

    try:
        kb = KnowledgeBase(load_project(project))
    except RagtuneError as exc:
        fail(exc)
    try:
        yield kb
    except RagtuneError as exc:
        fail(exc)
    finally:
        kb.close()


def _run_sync(kb: KnowledgeBase, quiet: bool) -> SyncResult:
    with sync_bar(quiet=quiet) as progress:
        return kb.sync(progress)


def _stage_bar(*, described: bool) -> Any:
    """A transient rich progress bar on stderr: the task's ``stage`` in bold, the bar, done of
    total, the time, and (``described``) the task's description."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("[bold]{task.fields[stage]}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    if described:
        columns.append(TextColumn("{task.description}"))
    return Progress(*columns, console=errors, transient=True)


@contextmanager
def sync_bar(*, quiet: bool) -> Iterator[SyncProgress | None]:
    """An embedding progress bar on stderr; yields the sync's progress callback (None when
    quiet)."""
    if quiet or state["quiet"]:
        yield None
        return
    with _stage_bar(described=True) as bar:
        task = bar.add_task("", total=None, stage="reading")

        def progress(done: int, total: int, document: str) -> None:
            # total 0: a changed document is being read and chunked, the total not known yet
            stage = "embedding" if total else "reading"
            bar.update(task, completed=done, total=total or None, description=document, stage=stage)

        yield progress


def sync_summary(result: SyncResult) -> dict[str, object]:
    plan = result.plan
    return {
        "snapshot": result.snapshot,
        "resumed": result.resumed,
        "added": [c.path for c in plan.of("added")],
        "changed": [c.path for c in plan.of("changed")],
        "deleted": [c.path for c in plan.of("deleted")],
        "unchanged": len(plan.of("unchanged")),
        "chunks_embedded": result.embedded,
        "vectors_reused": result.reused_vectors,
        "chunks_retired": plan.chunks_to_retire,
        "seconds": round(result.seconds, 3),
        "embed_seconds": round(result.embed_seconds, 3),
        "index": result.index,
        "skipped": [{"path": p, "reason": r} for p, r in result.skipped],
    }


def print_sync(result: SyncResult) -> None:
    info = sync_summary(result)
    changed = [f"{len(info[k])} {k}" for k in ("added", "changed", "deleted") if info[k]]  # type: ignore[arg-type]
    what = ", ".join(changed) if changed else "no document changed"
    console.print(
        f"snapshot {info['snapshot']}: {what}, {info['unchanged']} unchanged; "
        f"{info['chunks_embedded']} chunks embedded, {info['vectors_reused']} vectors reused, "
        f"{info['chunks_retired']} retired (kept in history) in {info['seconds']:.2f} s"
        + (" (resumed an interrupted sync)" if result.resumed else "")
    )
    for path, reason in result.skipped:
        errors.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)


@knowledge_app.command("sync")
def sync_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    as_json: JsonOption = False,
) -> None:
    """Sync every capability's sources into `.ragtune/knowledge.db`, re-embedding only changes.

    A file whose content hash did not change costs nothing; in a changed file only the sections
    whose text changed are embedded again. Deleted files retire their chunks, which stay in the
    history (`ragtune knowledge history DOC`). Unreadable, empty or unsupported files are
    reported and skipped; the rest of the sync goes on. A sync that is interrupted leaves the
    previous snapshot whole; the next sync finishes the work.
    """
    project = either_project(project, project_flag)
    with _knowledge(project) as kb:
        result = _run_sync(kb, quiet=as_json)
        if as_json:
            sys.stdout.write(json.dumps(sync_summary(result), indent=2) + "\n")
        else:
            print_sync(result)


@knowledge_app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    project: ProjectOption = None,
    capability: Annotated[
        str | None, typer.Option("--capability", "-c", help="Only this capability's sources.")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many results.")] = 5,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Only documents whose path matches (glob or prefix)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Search the text as it was at a snapshot id or an ISO time ('what did the "
            "template say then').",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="Filter on document metadata, FIELD=VALUE (glob): kind=pdf, title='*NDA*'. "
            "Repeatable.",
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="hybrid (default), bm25 or vector.")
    ] = "hybrid",
    as_json: JsonOption = False,
) -> None:
    """Search the knowledge: BM25 and vectors fused by reciprocal rank fusion.

    Examples:

        ragtune knowledge search "how long to report a data breach"

        ragtune knowledge search "liability cap" --capability templates -k 3 --json

        ragtune knowledge search "governing law" --as-of 1

    Each run loads the embedder (a few seconds; --mode bm25 needs none). For many queries keep
    one warm process: `ragtune serve` (its chat endpoint retrieves the same way) or, from Python,
    `ragtune.load(PROJECT).search(...)`.
    """
    if mode not in ("hybrid", "bm25", "vector"):
        fail(RagtuneError(f"--mode accepts hybrid, bm25 or vector (got {mode!r})."))
    filters: dict[str, str] = {}
    for item in where or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(RagtuneError(f"--where {item!r}: write FIELD=VALUE, e.g. kind=pdf."))
        filters[key.strip()] = value.strip()
    with _knowledge(project) as kb:
        hits = kb.search(
            query, k=k, capability=capability, source=source, as_of=as_of, where=filters,
            mode=mode,  # type: ignore[arg-type]
        )  # fmt: skip
        if as_json:
            sys.stdout.write(json.dumps([h.to_dict() for h in hits], indent=2) + "\n")
            return
        if not hits:
            console.print("no results")
            return
        from rich.table import Table

        table = Table(show_lines=True, expand=True)
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("score", justify="right", no_wrap=True)
        table.add_column("where", ratio=2)
        table.add_column("text", ratio=5)
        for rank, hit in enumerate(hits, start=1):
            text = hit.text if len(hit.text) <= 400 else hit.text[:397] + "..."
            table.add_row(
                str(rank),
                f"{hit.score:.4f}",
                f"{hit.document}\n{hit.section}\nv{hit.version} · snapshot {hit.snapshot}",
                text,
            )
        console.print(table)


@knowledge_app.command("history")
def history_command(
    document: Annotated[str, typer.Argument(help="The document's path, as in the project.")],
    project: ProjectOption = None,
    diff: Annotated[
        tuple[int, int] | None,
        typer.Option("--diff", help="Show the diff between two versions, e.g. --diff 1 2."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List a document's versions, and show what changed between two of them.

    Without --diff the diff between the last two versions is shown.
    """
    from ragtune.knowledge.history import document_history

    with _knowledge(project) as kb:
        history = document_history(kb.store, document, diff)
        if as_json:
            sys.stdout.write(json.dumps(history.to_dict(), indent=2) + "\n")
            return
        from rich.syntax import Syntax
        from rich.table import Table

        table = Table(title=f"{document}: {len(history.versions)} version(s)")
        for column in ("version", "snapshot", "synced at", "retired at", "chunks", "sha256"):
            table.add_column(column)
        for v in history.versions:
            retired = v.retired_at_snapshot
            table.add_row(
                str(v.version),
                str(v.snapshot),
                str(v.synced_at or "")[:19],
                "live" if retired is None else f"snapshot {retired}",
                str(v.chunks),
                v.sha256[:12],
            )
        console.print(table)
        if history.diff:
            console.print(Syntax(history.diff, "diff", word_wrap=True))


@knowledge_app.command("lookup")
def lookup_command(
    table: Annotated[str, typer.Argument(help="The table's path, e.g. tables/rates.csv.")],
    key: Annotated[str, typer.Argument(help="The value of its key column.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Exact lookup of one row of a CSV table by its key column (no embedding)."""
    with _knowledge(project) as kb:
        row = kb.lookup(table, key)
        if row is None:
            fail(RagtuneError(f"{table}: no row whose key is {key!r}."))
        if as_json:
            payload = {"document": row.document, "key": row.section, "text": row.text,
                       "snapshot": row.valid_from}  # fmt: skip
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            console.print(row.text)


@knowledge_app.command("tools")
def tools_command(
    project: ProjectOption = None,
    call: Annotated[
        tuple[str, str] | None,
        typer.Option("--call", help="Call one tool with a request: --call NAME 'REQUEST'."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the Python tools the capabilities declare (`tool:FILE.py:FUNCTION` sources).

    A tool is knowledge behind an API call: called at query time, never indexed. `--call`
    runs one, e.g. `ragtune knowledge tools --call counterparty_status "Acme Ltd"`.
    """
    with _knowledge(project) as kb:
        tools = kb.tools()
        if call is not None:
            name, request = call
            match = [t for t in tools if t.name == name]
            if not match:
                names = ", ".join(t.name for t in tools) or "none declared"
                fail(RagtuneError(f"--call {name!r}: no such tool (tools: {names})."))
            answers = match[0](request)
            if as_json:
                sys.stdout.write(json.dumps({"tool": name, "answers": answers}, indent=2) + "\n")
            else:
                for answer in answers:
                    console.print(answer)
            return
        if as_json:
            rows = [{"name": t.name, "description": t.description, "source": t.ref} for t in tools]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        if not tools:
            console.print("no tools declared (a source `tool:FILE.py:FUNCTION` declares one)")
        for t in tools:
            console.print(f"[bold]{t.name}[/]  {t.description}  [dim]{t.ref}[/]")


@knowledge_app.command("watch")
def watch_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON line per sync (JSON Lines), for scripts.")
    ] = False,
) -> None:
    """Re-sync within a second of any source file changing, until interrupted (Ctrl-C)."""
    project = either_project(project, project_flag)
    from ragtune.knowledge.watch import watch

    def report(result: SyncResult) -> None:
        if as_json:
            sys.stdout.write(json.dumps(sync_summary(result), default=str) + "\n")
            sys.stdout.flush()
        else:
            print_sync(result)

    with _knowledge(project) as kb:

        def ready(roots: list[Path]) -> None:
            # With --json, stdout holds only the JSON lines: the rest goes to stderr.
            (errors if as_json else console).print(
                "watching " + ", ".join(str(r) for r in roots) + " (Ctrl-C to stop)"
            )

        try:
            watch(kb, report, ready=ready)
        except KeyboardInterrupt:
            (errors if as_json else console).print("stopped")


@knowledge_app.command("migrate")
def migrate_command(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The PostgreSQL database to copy into: postgresql://USER@HOST:PORT/DB (an empty "
            "database with pgvector; the password from PGPASSWORD or ~/.pgpass).",
            show_default=False,
        ),
    ],
    project: ProjectOption = None,
    switch: Annotated[
        bool,
        typer.Option(
            "--switch",
            help="When the copy checks out, set knowledge.store in ragtune.yaml to it (written "
            "atomically, comments kept, the password left out).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Copy the project's knowledge store into PostgreSQL, history included, and check it.

    Every snapshot, document version and chunk row (with its vector and row id) comes across,
    with the capabilities and the few-shot examples, so `search --as-of` answers the same on the
    copy. The copy is one transaction, checked before it commits: the counts of both stores, and
    a sample of vector searches (live and as of earlier snapshots) and keyword searches. If
    anything fails, the target is left as it was. The project's own store is only read.

    The target must be an empty database (or schema) with pgvector; once, as a superuser:

        psql -c 'CREATE DATABASE ragtune'

        psql -d ragtune -c 'CREATE EXTENSION vector'

    Then:

        ragtune knowledge migrate --to postgresql://ragtune@db.internal:5432/ragtune

        ragtune knowledge migrate --to postgresql://ragtune@db:5432/ragtune --switch --json

    Without --switch the project keeps using its current store until you set
    `knowledge.store: postgresql://...` in ragtune.yaml (or RAGTUNE_STORE, which wins over it).
    Exit status 2: a bad or unreachable target, one that is not empty, or a copy that did not
    check out.
    """
    from ragtune.knowledge.migrate import migrate_store, switch_store, url_without_password
    from ragtune.knowledge.sync import STORE_ENV
    from ragtune.project import load_project

    try:
        loaded = load_project(project)
        with migrate_bar(quiet=as_json) as progress:
            report = migrate_store(loaded, to, progress=progress)
        switched = switch_store(loaded, to) if switch else None
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        payload = {**report.to_dict(), "switched": str(switched) if switched else None}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    counts = report.counts
    agreed, total = report.agreed
    console.print(
        f"copied {report.source} to {report.target} in {report.seconds:.1f} s: "
        f"{counts['snapshots'][1]} snapshots, {counts['document_versions'][1]} document versions "
        f"({counts['documents'][1]} live), {counts['chunk_rows'][1]} chunk rows "
        f"({counts['chunks'][1]} live), {counts['examples'][1]} few-shot examples; counts equal, "
        f"{agreed}/{total} sample searches agree",
        highlight=False,
    )
    if report.open_snapshot is not None:
        errors.print(
            f"[yellow]note[/] snapshot {report.open_snapshot} was open (an interrupted sync); it "
            "was copied open and the next sync on the new store finishes it",
            highlight=False,
        )
    if switched is not None:
        console.print(f"{switched}: knowledge.store now names {report.target}", highlight=False)
    else:
        console.print(
            f"next: set `store: {url_without_password(to)}` under `knowledge:` in ragtune.yaml "
            "to use it (or run this again with --switch, into a new database)",
            highlight=False,
        )
    if os.environ.get(STORE_ENV, "").strip():
        errors.print(
            f"[yellow]note[/] {STORE_ENV} is set and wins over ragtune.yaml: change or unset it "
            "too",
            highlight=False,
        )


@contextmanager
def migrate_bar(*, quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar on stderr for a migration (chunk rows copied, then sample searches);
    yields its callback (None when quiet)."""
    if quiet or state["quiet"]:
        yield None
        return
    with _stage_bar(described=False) as bar:
        task = bar.add_task("", total=None, stage="opening")

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None, stage=stage)

        yield progress
