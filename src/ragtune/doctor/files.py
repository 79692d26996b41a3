"""Files the project serves from: the adapters against their manifests, and links out of the
project in the knowledge sources."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from ragtune.doctor.report import Area, Check
from ragtune.errors import RagtuneError
from ragtune.project import Project

if TYPE_CHECKING:
    from ragtune.adapters import AdapterManifest


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (header unreadable, sizes disagreeing), or None.

    Reads the header only: a file cut short or grown, or a damaged header, is found; a byte
    changed inside a tensor is not (the adapter manifest records no hash of the weights).
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 <= length <= size - 8:
            return f"its header length does not fit the file's {size} bytes"
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError):
            return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    end = 0
    for name, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if name != "__metadata__":
            if not (isinstance(offsets, list) and len(offsets) == 2):
                return f"tensor {name!r} has no data_offsets"
            end = max(end, int(offsets[1]))
    if 8 + length + end != size:
        return f"its tensors end at byte {8 + length + end}, the file has {size}"
    return None


def check_adapters(project: Project, *, plan: bool = True) -> list[Check]:
    """Each adapter's files against its manifest, and what the plan would (re)train.

    Args:
        project: The loaded project.
        plan: Also list what ``ragtune plan`` would train (it reads the store: only when the
            store is readable).
    """
    from ragtune.adapters import MANIFEST, AdapterError, AdapterManifest

    out = Area("adapters", project.root)
    root = project.adapters_dir
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith(".") and folder.name.endswith(".lock"):
            continue  # a run's lock file: the kernel frees it when the run ends or dies
        if folder.name.startswith("."):
            out.warn(folder.name, f"{folder}: left by an interrupted training run or swap",
                     out.fix("adapter list") + " (restores a swap; `ragtune adapter train "
                     "NAME` resumes a run)")  # fmt: skip
            continue
        if not folder.is_dir():
            continue
        train = out.fix(f"adapter train {folder.name}")
        if not (folder / MANIFEST).is_file():
            out.fail(folder.name, f"{folder}: no {MANIFEST}, so it is not served", train)
            continue
        try:
            manifest = AdapterManifest.read(folder)
        except AdapterError as exc:
            out.fail(folder.name, str(exc), train)
            continue
        problems = _adapter_problems(project, folder, manifest)
        if problems:
            out.fail(folder.name, f"{folder}: {'; '.join(problems)}", train)
        else:
            hashed = "GGUF LoRA matches its SHA-256, " if manifest.gguf_lora else ""
            out.ok(folder.name, f"{hashed}weights whole, trained on {manifest.base_model.name}")
    if all(c.status == "warn" for c in out.checks):
        out.ok("adapters", f"no adapter in {root}")
    if plan:
        _plan_checks(project, out)
    return out.checks


def _adapter_problems(project: Project, folder: Path, manifest: AdapterManifest) -> list[str]:
    """What is wrong with one adapter's files."""
    from ragtune.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
    from ragtune.generate.backend import default_backend
    from ragtune.generate.gguf_lora import GGUF_LORA

    problems = []
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        problems.append(f"{ADAPTER_WEIGHTS} is missing")
    elif (why := safetensors_problem(weights)) is not None:
        problems.append(f"{ADAPTER_WEIGHTS} is damaged: {why}")
    try:
        json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{ADAPTER_CONFIG} is unreadable ({exc})")
    gguf, recorded = folder / GGUF_LORA, manifest.gguf_lora
    if recorded is not None:
        if not gguf.is_file():
            problems.append(f"{GGUF_LORA} is missing (the manifest records its SHA-256)")
        elif (digest := sha256_file(gguf)) != recorded:
            problems.append(f"{GGUF_LORA} has SHA-256 {digest[:12]}, the manifest records "
                            f"{recorded[:12]}: it changed after training")  # fmt: skip
    elif (project.config.model.backend or default_backend()) == "llama.cpp":
        problems.append(f"no {GGUF_LORA}, so the llama.cpp backend cannot serve it")
    base, trained_on = _base_sha(project), manifest.base_model.sha256
    if base is not None and trained_on and trained_on != base:
        problems.append(f"trained on another base model ({manifest.base_model.name} "
                        f"{trained_on[:12]}) than the one installed ({base[:12]})")  # fmt: skip
    return problems


def _base_sha(project: Project) -> str | None:
    from ragtune.generate.base import ModelError, model_sha256, resolve_base_model

    try:
        spec = resolve_base_model(project.config.model.base_model)
        return None if spec.hub_id else model_sha256(spec)
    except (ModelError, OSError):
        return None


def _plan_checks(project: Project, out: Area) -> None:
    """What ``ragtune plan`` would train: an adapter the project wants and lacks, or a stale
    one (a warning: the capability is served without it until then)."""
    from ragtune.audit import decisions
    from ragtune.behavior.staleness import plan_adapters

    try:
        candidates = [c.name for c in project.config.capabilities if c.examples]
        lora = {name for name, d in decisions(project, candidates).items() if d == "lora"}
        plans = plan_adapters(project, lora)
    except (RagtuneError, sqlite3.DatabaseError, OSError) as exc:
        return out.warn("plan", f"cannot plan the adapters: {exc}", out.fix("plan"))
    for adapter in plans:
        if adapter.action != "none":
            name = adapter.capability
            fix = out.fix("build" if adapter.action == "install" else f"adapter train {name}")
            out.warn(f"plan: {name}", f"{adapter.action}: {'; '.join(adapter.reasons)}", fix)


# -- links -------------------------------------------------------------------------------------


def check_links(project: Project, *, store: bool = True) -> list[Check]:
    """Symbolic links out of the project in the knowledge sources (sync skips them), folder
    links inside it (sync does not follow them), and documents in the store from outside it.

    Args:
        project: The loaded project.
        store: Also read the store's live document paths (only when it is readable).
    """
    from ragtune.doctor.store import outside_documents
    from ragtune.knowledge.sources import relative_posix

    out = Area("links", project.root)
    root = project.root
    leaving, inside = _links(project)
    for link, real in sorted(leaving.items()):
        kind, copy = ("folder", "cp -rT") if real.is_dir() else ("file", "cp")
        out.fail(relative_posix(link, root),
                 f"a {kind} link to {real}, outside the project: sync skips it, so it is not "
                 f"served. The fix copies it into the project; or remove the link "
                 f"(rm {shlex.quote(str(link))})",
                 f"rm {shlex.quote(str(link))} && {copy} {shlex.quote(str(real))} "
                 f"{shlex.quote(str(link))}")  # fmt: skip
    for link in sorted(inside):
        out.warn(relative_posix(link, root), f"a folder link to {os.path.realpath(link)}: sync "
                 "does not follow folder links, so its files are not served; name that folder "
                 "in sources instead")  # fmt: skip
    outside = outside_documents(project) if store else []
    if outside:
        out.fail("store", f"the store serves {len(outside)} document(s) from outside the project "
                 f"({', '.join(outside[:5])}); the next sync retires them",
                 out.fix("knowledge sync"))  # fmt: skip
    if not out.checks:
        out.ok("sources", "no link leaves the project")
    return out.checks


def _links(project: Project) -> tuple[dict[Path, Path], list[Path]]:
    """Links in the knowledge sources whose real path leaves the project (with that path), and
    folder links that stay inside it."""
    from ragtune.knowledge.sources import discover, source_folder
    from ragtune.knowledge.tools import is_tool_ref

    root = project.root
    real_root = Path(os.path.realpath(root))
    refs = [r for c in project.config.capabilities for r in c.sources if not is_tool_ref(r)]
    leaving: dict[Path, Path] = {}
    inside: list[Path] = []
    for path, _ in discover(root, refs).skipped:
        real = Path(os.path.realpath(path))
        if path.exists() and not real.is_relative_to(real_root):
            leaving[path] = real
    for folder in {f for ref in refs if (f := source_folder(root, ref)) is not None}:
        for current, dirs, _ in os.walk(folder):  # not followed by sync: looked at here
            for link in (Path(current) / d for d in dirs):
                if link.is_symlink():
                    real = Path(os.path.realpath(link))
                    if real.is_relative_to(real_root):
                        inside.append(link)
                    else:
                        leaving[link] = real
    return leaving, inside
