"""``ragtune knowledge migrate``: copy a project's knowledge store into PostgreSQL, history
included, and check that the copy answers as the original does.

The project's current store (``.ragtune/knowledge.db`` by default) is opened read-only and read
in one read transaction, so a sync running meanwhile changes nothing of what is copied. The
target must be new: an empty database or schema, or one with an empty ragtune store in it.
Everything written to it - the copy (:meth:`PostgresStore.copy_from
<ragtune.knowledge.store.postgres.PostgresStore.copy_from>`, which checks the counts) and the
checks after it - is one transaction, committed only when every check agrees: the same
snapshots, document versions, chunk rows, capabilities and few-shot examples, and for a sample
of searches (vector, live and ``--as-of`` earlier snapshots; keyword) the same top hits. When
anything fails the transaction is rolled back, and what opening the store created in the target
(its tables, the ``vector`` extension) is dropped again: the target is left as it was.

The project itself is not changed unless asked (:func:`switch_store` writes ``knowledge.store``
into ragtune.yaml).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from ragtune.errors import RagtuneError
from ragtune.knowledge.store import (
    ChunkRow,
    KnowledgeStore,
    StoreError,
    open_store,
    redact,
    store_scheme,
)
from ragtune.project import Project

MigrateProgress = Callable[[str, int, int], None]
"""Called as ``(stage, done, total)``: stage ``copying`` counts chunk rows, ``checking`` the
sample searches."""

SAMPLE = 5  # chunks whose vectors and words make the sample searches, per snapshot checked
TOP = 3  # hits compared per search


class MigrationError(StoreError):
    """The migration was refused, or failed and was undone; the target is as it was."""


@runtime_checkable
class CopyTarget(Protocol):
    """A store that can take another's whole history in one transaction (PostgreSQL)."""

    conn: Any

    def copy_from(
        self, source: KnowledgeStore, *, capabilities: Sequence[str] = (), batch: int = 1000
    ) -> dict[str, int]:
        """Copy ``source`` into this empty store; see ``PostgresStore.copy_from``."""
        ...


@dataclass(frozen=True)
class SearchCheck:
    """One sample search run on both stores.

    Attributes:
        kind: ``vector`` (a chunk's own stored vector as the query) or ``keyword`` (words of
            its section or text).
        query: The chunk row whose vector is the query, or the words.
        as_of: The snapshot searched (None: live).
        source: The source's top hit ids, best first.
        target: The target's top hit ids, best first.
        agreed: The top hits agree (see :func:`migrate_store`).
    """

    kind: str
    query: str
    as_of: int | None
    source: list[int]
    target: list[int]
    agreed: bool


@dataclass
class MigrationReport:
    """What a migration copied and how the copy was checked.

    Attributes:
        source: The store copied (a file path).
        target: The store written (its URL without the password).
        copied: Rows written: snapshots, documents (every version), chunks (every version),
            examples (live few-shot examples).
        counts: Each count on both stores, ``{"name": [source, target]}``: snapshots, document
            versions, live documents, chunk rows, live chunks, retired chunks, capability
            memberships, examples.
        checks: The sample searches.
        open_snapshot: The id of a snapshot an interrupted sync left open in the source (copied
            open; the next sync on the target finishes it), or None.
        seconds: Wall time of the copy and the checks.
    """

    source: str
    target: str
    copied: dict[str, int] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    checks: list[SearchCheck] = field(default_factory=list)
    open_snapshot: int | None = None
    seconds: float = 0.0

    @property
    def agreed(self) -> tuple[int, int]:
        """(sample searches that agreed, sample searches)."""
        return sum(c.agreed for c in self.checks), len(self.checks)

    @property
    def same_first_hit(self) -> dict[str, tuple[int, int]]:
        """Per kind of search: (searches whose first hit is the same row on both, searches)."""
        out: dict[str, tuple[int, int]] = {}
        for check in self.checks:
            same, total = out.get(check.kind, (0, 0))
            out[check.kind] = (same + (check.source[:1] == check.target[:1]), total + 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values (what ``--json`` prints)."""
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        agreed, total = self.agreed
        out["searches_agreed"] = agreed
        out["searches"] = total
        out["same_first_hit"] = {k: list(v) for k, v in self.same_first_hit.items()}
        return out


def migrate_store(
    project: Project,
    target_url: str,
    *,
    progress: MigrateProgress | None = None,
) -> MigrationReport:
    """Copy the project's knowledge store, history included, into the empty store at
    ``target_url`` and check the copy.

    Args:
        project: The project whose store is copied (``knowledge.store`` / ``RAGTUNE_STORE``, by
            default ``.ragtune/knowledge.db``).
        target_url: ``postgresql://user@host:port/db`` (the password from ``PGPASSWORD`` or
            ``~/.pgpass``).
        progress: Called as ``(stage, done, total)`` while copying and checking.

    Returns:
        What was copied, the counts on both sides and the sample searches.

    Raises:
        MigrationError: The target is not a PostgreSQL URL, is the project's own store, holds
            data or other tables, or the copy or a check failed (then the target was put back as
            it was). Every message names the target without its password.
        StoreError: The project has no store yet, or the target cannot be reached.
    """
    from ragtune.knowledge.sync import store_location

    target_url = target_url.strip()
    shown = redact(target_url)
    source_location = store_location(project)
    if store_scheme(target_url) not in ("postgresql", "postgres") or "://" not in target_url:
        raise MigrationError(
            f"--to {shown!r}: migrate copies into PostgreSQL; give a URL such as "
            "postgresql://user@host:5432/ragtune (the password from PGPASSWORD or ~/.pgpass)."
        )
    if _same_store(source_location, target_url):
        raise MigrationError(
            f"--to {shown}: that is the project's own store (knowledge.store / RAGTUNE_STORE "
            "names it); migrate into another database or schema."
        )
    source = open_store(source_location, readonly=True)
    try:
        if source.latest_snapshot() == 0:
            raise MigrationError(
                f"{source.location}: the knowledge store is empty; run `ragtune knowledge sync` "
                "first, or point knowledge.store at the new database and sync there."
            )
        before = _inspect(target_url)
        started = time.perf_counter()
        target = open_store(target_url)
        try:
            if not isinstance(target, CopyTarget):
                raise MigrationError(f"--to {shown}: this store cannot take a copy.")
            report = _copy_and_check(project, source, target, progress)
        except Exception as exc:
            target.close()
            _put_back(target_url, before)
            if isinstance(exc, RagtuneError):
                raise
            raise MigrationError(
                f"--to {shown}: the copy failed ({_first_line(exc)}); nothing was kept, the "
                "target is as it was."
            ) from exc
        except BaseException:
            target.close()
            _put_back(target_url, before)
            raise
        target.close()
        report.seconds = time.perf_counter() - started
        return report
    finally:
        source.close()


def _copy_and_check(
    project: Project,
    source: KnowledgeStore,
    target: KnowledgeStore,
    progress: MigrateProgress | None,
) -> MigrationReport:
    """The copy and the checks, in one transaction of the target and one read of the source."""
    copier = cast(CopyTarget, target)
    report = MigrationReport(source=source.location, target=target.location)
    held = target.latest_snapshot(), target.chunk_signature()[0]
    if any(held):
        raise MigrationError(
            f"--to {target.location}: the target is not empty ({held[0]} snapshot(s), {held[1]} "
            "chunk row(s)); migrate into a new database or schema (CREATE DATABASE ...; CREATE "
            "EXTENSION vector;), or drop that one first."
        )
    capabilities = [c.name for c in project.config.capabilities]
    with source.reading(), copier.conn.transaction():
        total = source.chunk_signature()[0]
        counting = _Counting(source, total, progress)
        report.copied = copier.copy_from(cast(KnowledgeStore, counting), capabilities=capabilities)
        report.counts = _counts(source, target, capabilities)
        differ = {k: v for k, v in report.counts.items() if v[0] != v[1]}
        if differ:
            said = ", ".join(f"{k} {v[0]} there, {v[1]} here" for k, v in differ.items())
            raise MigrationError(
                f"--to {target.location}: the copy does not add up ({said}); nothing was kept."
            )
        if source.snapshots() != target.snapshots():
            raise MigrationError(
                f"--to {target.location}: the snapshots differ from the source's after the copy; "
                "nothing was kept."
            )
        open_ = [s.id for s in source.snapshots() if s.status == "open"]
        report.open_snapshot = open_[-1] if open_ else None
        report.checks = _sample_searches(source, target, progress)
        failed = [c for c in report.checks if not c.agreed]
        if failed:
            said = "; ".join(
                f"{c.kind} {c.query!r}"
                + (f" as of {c.as_of}" if c.as_of is not None else "")
                + f": {c.source} there, {c.target} here"
                for c in failed[:3]
            )
            raise MigrationError(
                f"--to {target.location}: {len(failed)} of {len(report.checks)} sample searches "
                f"answer differently on the copy ({said}); nothing was kept."
            )
    return report


class _Counting:
    """A source store that reports each batch of chunk rows read from it (the copy's
    progress)."""

    def __init__(self, store: KnowledgeStore, total: int, progress: MigrateProgress | None) -> None:
        self._store, self._total, self._progress, self._done = store, total, progress, 0
        if progress is not None:
            progress("copying", 0, total)

    def chunks(self, rowids: Sequence[int]) -> dict[int, ChunkRow]:
        rows = self._store.chunks(rowids)
        self._done += len(rows)
        if self._progress is not None:
            self._progress("copying", self._done, self._total)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _counts(
    source: KnowledgeStore, target: KnowledgeStore, capabilities: Sequence[str]
) -> dict[str, list[int]]:
    """Every count the copy should keep, on both stores."""

    def of(store: KnowledgeStore) -> dict[str, int]:
        paths = sorted({path for path, _, _ in store.document_metadata()})
        rows, retired = store.chunk_signature()
        live = store.counts()
        return {
            "snapshots": len(store.snapshots()),
            "document_versions": sum(len(store.document_versions(p)) for p in paths),
            "documents": live["documents"],
            "chunk_rows": rows,
            "chunks": live["chunks"],
            "retired_chunks": retired,
            "capability_memberships": sum(len(store.capabilities_of(p)) for p in paths),
            "examples": sum(len(store.live_examples(c)) for c in capabilities),
        }

    there, here = of(source), of(target)
    return {key: [there[key], here[key]] for key in there}


def _sample_searches(
    source: KnowledgeStore, target: KnowledgeStore, progress: MigrateProgress | None
) -> list[SearchCheck]:
    """Vector searches (a chunk's own vector as the query; live and at the first and a middle
    snapshot) and keyword searches (its section or first words), on both stores.

    A vector search as of a snapshot (exact on both stores) agrees when the top hits have the
    same ids and scores, in order (ties of equal scores compared as sets); a live one when the
    first hit does, since PostgreSQL's live search goes through its HNSW index, approximate
    past the nearest row (on 10,000 random 384-dimension vectors its second and third hits
    differed from the exact ones for 1 of 5 sample rows). A keyword search agrees when both
    find nothing or their top hits share a chunk: PostgreSQL's full-text ranking is close to
    SQLite's BM25, not the same (see ``postgres.py``), so which chunk comes first may differ
    (the report counts how often it does); a keyword index that is missing or empty on the
    target shares none.
    """
    import numpy as np

    snapshots = [s.id for s in source.snapshots()]
    moments: list[int | None] = [None]
    if len(snapshots) > 1:
        moments += sorted({snapshots[0], snapshots[len(snapshots) // 2]})
    plan: list[tuple[str, str, int | None, Any]] = []
    for moment in moments:
        ids = sorted(source.live_ids()) if moment is None else source.vectors_at(moment)[0]
        picked = _spread(ids, SAMPLE)
        found, blobs = source.vectors_of(picked)
        rows = source.chunks(found)
        for rowid, blob in zip(found, blobs, strict=True):
            plan.append(("vector", f"row {rowid}", moment, np.frombuffer(blob, np.float32)))
            words = _words(rows[rowid])
            if words:
                plan.append(("keyword", words, moment, None))
    checks = []
    for done, (kind, query, at, vector) in enumerate(plan, start=1):
        if kind == "vector":
            there = source.nearest(vector, TOP, at=at)
            here = target.nearest(vector, TOP, at=at)
            # live: pgvector's HNSW is approximate past the first hit (the query's own row)
            agreed = _same_ranking(
                there[:1] if at is None else there, here[:1] if at is None else here
            )
        else:
            there = source.bm25(query, TOP, at=at)
            here = target.bm25(query, TOP, at=at)
            agreed = (not there and not here) or bool({r for r, _ in there} & {r for r, _ in here})
        checks.append(
            SearchCheck(kind, query, at, [r for r, _ in there], [r for r, _ in here], agreed)
        )
        if progress is not None:
            progress("checking", done, len(plan))
    return checks


def _spread(ids: Sequence[int], n: int) -> list[int]:
    """Up to ``n`` of ``ids``, evenly spread (the same ones every run)."""
    if len(ids) <= n:
        return list(ids)
    step = len(ids) / n
    return [ids[int(i * step)] for i in range(n)]


def _words(row: ChunkRow) -> str:
    """A keyword query from a chunk: its section's words, else the first words of its text."""
    from ragtune.knowledge.store.postgres import keyword_words

    words = keyword_words(row.section) or keyword_words(row.text)
    return " ".join(words[:6])


def _same_ranking(there: list[tuple[int, float]], here: list[tuple[int, float]]) -> bool:
    """Two vector rankings agree: the same scores in order, and the same ids at each score."""
    if len(there) != len(here):
        return False
    if any(abs(a[1] - b[1]) > 1e-4 for a, b in zip(there, here, strict=True)):
        return False

    def groups(hits: list[tuple[int, float]]) -> list[set[int]]:
        out: list[set[int]] = []
        last: float | None = None
        for rowid, score in hits:
            if last is None or abs(score - last) > 1e-4:
                out.append(set())
            out[-1].add(rowid)
            last = score
        return out

    a, b = groups(there), groups(here)
    # the last group may be cut off by the limit on either side: compare it by overlap
    return a[:-1] == b[:-1] and (not a or bool(a[-1] & b[-1]))


# -- the target's state before, and putting it back ---------------------------------------------


@dataclass(frozen=True)
class _Before:
    """What the target's schema held before the migration opened a store in it."""

    tables: frozenset[str]
    vector_extension: bool


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect(url: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="ragtune")
    except psycopg.Error as exc:
        raise StoreError(
            f"--to {redact(url)}: cannot connect to the PostgreSQL server: "
            f"{redact(_first_line(exc))}. "
            "Check the host, port, database and user; a password comes from PGPASSWORD or "
            "~/.pgpass."
        ) from None


def _inspect(url: str) -> _Before:
    """The target's tables and extension before anything is written; refuses a schema that
    holds tables of something other than a ragtune store."""
    with _connect(url) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        if schema is None:
            raise MigrationError(
                f"--to {redact(url)}: no schema of its search_path exists; create it first "
                "(CREATE SCHEMA ...)."
            )
        tables = frozenset(
            str(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        )
        vector = (
            conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
            is not None
        )
    if tables and "migrations" not in tables:
        listed = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
        raise MigrationError(
            f"--to {redact(url)}: schema {schema} already holds tables that are not a ragtune "
            f"store ({listed}); migrate into a new database, or a schema of its own "
            "(?options=-csearch_path%3Dragtune)."
        )
    return _Before(tables, vector)


def _put_back(url: str, before: _Before) -> None:
    """Drop what opening the store created in the target (its tables, the vector extension),
    in one transaction; the copy itself was rolled back already."""
    import psycopg
    from psycopg import sql

    try:
        with _connect(url) as conn, conn.transaction():
            now = {
                str(r[0])
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            }
            created = now - before.tables if "migrations" not in before.tables else set()
            for table in sorted(created):
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table))
                )
            if not before.vector_extension:
                conn.execute("DROP EXTENSION IF EXISTS vector")
    except (psycopg.Error, StoreError):  # the migration's own error says more; keep it
        pass


def _same_store(source: str, target: str) -> bool:
    """Both locations name the same PostgreSQL database and schema (a file path never does)."""
    if store_scheme(source) not in ("postgresql", "postgres"):
        return False
    from psycopg.conninfo import conninfo_to_dict

    def key(url: str) -> tuple[Any, ...]:
        info = conninfo_to_dict(url)
        return tuple(info.get(k) for k in ("host", "port", "dbname", "options"))

    try:
        return key(source) == key(target)
    except Exception:  # an unparsable URL: opening it says why
        return False


# -- ragtune.yaml -------------------------------------------------------------------------------


def switch_store(project: Project, url: str) -> Path:
    """Set ``knowledge.store`` in the project's ragtune.yaml to ``url`` without its password,
    keeping the rest of the file (comments included) as it is; written atomically.

    Returns:
        The file written.

    Raises:
        RagtuneError: The file's ``knowledge`` entry is not a mapping, or the result would not
            load (then the file is unchanged).
    """
    import yaml

    from ragtune.project import load_project, write_atomic

    path = project.path
    text = path.read_text(encoding="utf-8")
    value = url_without_password(url)
    line = f"store: {_yaml_scalar(value)}"
    root = yaml.compose(text)
    knowledge = None
    if isinstance(root, yaml.MappingNode):
        for key, node in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "knowledge":
                knowledge = (key, node)
    if knowledge is None:
        new = text + ("" if text.endswith("\n") or not text else "\n") + f"knowledge:\n  {line}\n"
    else:
        key, node = knowledge
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~"):
            at = node.end_mark.index if node.value else key.end_mark.index + 1
            new = text[:at].rstrip(" ") + f"\n  {line}" + text[at:]
        elif not isinstance(node, yaml.MappingNode) or node.flow_style:
            raise RagtuneError(
                f"{path}:{key.start_mark.line + 1}: knowledge is not a block mapping; set "
                f"knowledge.store: {value} by hand."
            )
        else:
            store = [(k, v) for k, v in node.value if getattr(k, "value", None) == "store"]
            if store:
                k, v = store[0]
                new = text[: k.start_mark.index] + line + text[v.end_mark.index :]
            else:
                first = node.value[0][0].start_mark
                start = text.rfind("\n", 0, first.index) + 1
                new = text[:start] + " " * first.column + line + "\n" + text[start:]
    tmp = path.with_name(f".{path.name}.migrate")
    try:
        tmp.write_text(new, encoding="utf-8")
        load_project(tmp, check_files=False)
    finally:
        tmp.unlink(missing_ok=True)
    write_atomic(path, new)
    return path


def url_without_password(url: str) -> str:
    """The URL with its password left out, from the user part or the query, and the rest kept
    (``?host=``, ``?sslmode=``): what may go into ragtune.yaml (libpq reads the password from
    PGPASSWORD or ~/.pgpass)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{user}@{host}" if user else host)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        kept = [(k, v) for k, v in query if k != "password"]
        parts = parts._replace(query=urlencode(kept, safe="/%:"))
    return urlunsplit(parts)


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar on one line (quoted when YAML would read it otherwise)."""
    import yaml

    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return dumped.removesuffix("...").strip()
