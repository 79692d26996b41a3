"""``ragtune doctor``: is this install and this project in a state to serve, and if not, why?

Each check looks at one thing and returns a :class:`Check`: ``ok``, ``warn`` (works, but worth
knowing) or ``fail`` (something will not work or is damaged), what it found, and the command
that fixes it. :func:`diagnose` runs them all, in the order a problem is best fixed in:

1. **install** (:mod:`~ragtune.doctor.install`): the Python packages each feature needs (found,
   not imported), and the generation backend ``model.backend`` resolves to;
2. **models**: the embedder and the base model, present on disk (nothing is downloaded);
3. **store** (:mod:`~ragtune.doctor.store`): ``.ragtune/knowledge.db`` - SQLite's
   ``integrity_check``, the FTS5 keyword index against its chunks - or, on PostgreSQL, the
   server reached, pgvector created in the database and the GIN keyword index; then the
   schema's migrations against those this ragtune knows, interrupted syncs, the embedder of
   its vectors;
4. **index**: what is derived from the store - the usearch vector file and its record (the
   snapshot and row counts it reflects, its keys against the live chunks) and leftovers of an
   interrupted save, or PostgreSQL's HNSW index against the vectors' dimension; the few-shot
   examples against their files;
5. **adapters** (:mod:`~ragtune.doctor.files`): each adapter's manifest, its safetensors weights
   (whole: sizes agreeing with the header), its GGUF LoRA against the SHA-256 the manifest
   records, the base model it was trained on against the one installed, and what ``ragtune
   plan`` would (re)train;
6. **links**: files and folders in the knowledge sources that are symbolic links out of the
   project (sync skips them; the doctor names them), and documents in the store from outside.

Nothing is written (``ragtune plan``'s adapter listing, which the adapters check uses, puts
back an adapter whose replacement was interrupted between its two renames, as every command
does), except by :func:`repair`, which rebuilds the derived indexes (the keyword index and the
vector file) from the store - the source of truth - and nothing else.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ragtune.doctor.files import check_adapters, check_links, safetensors_problem
from ragtune.doctor.install import check_install, check_models, check_packages
from ragtune.doctor.report import Area, Check, DoctorReport, Status
from ragtune.doctor.store import INDEX, check_indexes, check_store
from ragtune.errors import RagtuneError
from ragtune.project import Project, load_project

__all__ = [
    "Check",
    "DoctorReport",
    "Status",
    "check_adapters",
    "check_indexes",
    "check_install",
    "check_links",
    "check_models",
    "check_packages",
    "check_store",
    "diagnose",
    "repair",
    "safetensors_problem",
]


def diagnose(target: Path | str | None = None) -> DoctorReport:
    """Check the install and the project at ``target`` (a folder or its ragtune.yaml).

    A project that cannot be loaded is itself a failed check; the install and the default
    models are checked all the same. Nothing is written.

    Args:
        target: The project folder or file; None: the current folder.

    Returns:
        The report; :attr:`DoctorReport.ok` is False when any check failed.
    """
    project, checks = _load(target)
    root = project.root if project else None
    report = DoctorReport(project.config.project if project else None, root, checks)
    report.checks += check_install(project)
    report.checks += check_models(project)
    if project is None:
        return report
    store_checks, readable = check_store(project)
    report.checks += store_checks
    if readable:
        report.checks += check_indexes(project)
    # The plan opens the store the way every command does, which applies pending migrations:
    # with any pending, it is left out (the schema check says what to run).
    current = not any(c.name == "schema" and c.status != "ok" for c in store_checks)
    report.checks += check_adapters(project, plan=readable and current)
    report.checks += check_links(project, store=readable)
    return report


def repair(target: Path | str | None = None) -> list[str]:
    """Rebuild the derived indexes from the store: the FTS5 keyword index and the vector file.

    The store's rows are the source of truth and are not changed; nothing else is touched.

    Args:
        target: The project folder or file; None: the current folder.

    Returns:
        What was done, one line each.

    Raises:
        RagtuneError: The project cannot be loaded, or it has no store to rebuild from.
    """
    from ragtune.knowledge.index import VectorIndex
    from ragtune.knowledge.store import StoreError, open_store
    from ragtune.knowledge.sync import store_location

    project = load_project(target, check_files=False)
    location = store_location(project)
    try:
        store = open_store(location, readonly=True)
    except StoreError as exc:
        raise RagtuneError(f"{exc} (nothing to repair)") from exc
    done = []
    try:
        done.extend(store.repair())
        embedder, dim = store.get_meta("embedder"), store.get_meta("dim")
        if embedder and dim and not store.native_vectors:
            index = project.state_dir / INDEX
            for derived in (index, index.with_name(INDEX + ".json")):
                derived.unlink(missing_ok=True)
            VectorIndex(index, int(dim), embedder).catch_up(store)
            done.append(f"{index}: vector index rebuilt ({store.counts()['chunks']} live chunks)")
    finally:
        store.close()
    return done


def _load(target: Path | str | None) -> tuple[Project | None, list[Check]]:
    """The project, and a failed check when it cannot be loaded whole."""
    out = Area("project", None)
    try:
        project = load_project(target)
        out.ok("ragtune.yaml", f"{project.path} is valid")
        return project, out.checks
    except RagtuneError as exc:
        where = f" {shlex.quote(str(target))}" if target is not None else ""
        out.fail("ragtune.yaml", str(exc), f"ragtune audit{where}")
    try:  # a file it names is missing: the rest can still be checked
        return load_project(target, check_files=False), out.checks
    except RagtuneError:
        return None, out.checks
