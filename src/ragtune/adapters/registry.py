"""Where adapters are kept: the registry of ``.ragtune/adapters/<name>/``.

Each adapter is one folder written whole by :func:`ragtune.behavior.train.train_adapter`::

    .ragtune/adapters/risk_flags/
        adapter_model.safetensors   the LoRA weights (never a pickle)
        adapter_config.json         PEFT's config, so PEFT can load the folder by itself
        ragtune.json                the manifest: what it was made from, and how well it did

Folders whose name starts with a dot are work in progress (``.<name>.tmp`` while a run writes,
``.<name>.checkpoint`` while a run can still be resumed) and are never listed as adapters.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ragtune.adapters.manifest import MANIFEST, AdapterError, AdapterManifest
from ragtune.errors import closest

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "AdapterInfo",
    "adapter_path",
    "check_name",
    "checkpoint_path",
    "list_adapters",
    "load_manifest",
    "recover_interrupted_swaps",
    "remove_adapter",
    "staging_path",
]

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"

# A name becomes a folder name: no separators, no leading dot (those are work in progress).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class AdapterInfo:
    """One adapter in the registry.

    Attributes:
        name: The folder name (normally the capability it was trained for).
        path: The adapter folder.
        manifest: Its ``ragtune.json``.
        size_bytes: Bytes on disk of the files in the folder.
    """

    name: str
    path: Path
    manifest: AdapterManifest
    size_bytes: int


def check_name(name: str) -> str:
    """Return ``name`` when it can be an adapter folder name, else raise AdapterError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AdapterError(
            f"adapter name {name!r} cannot be a folder name: use letters, digits, '_', '-' and "
            "'.', starting with a letter or digit (at most 100 characters)."
        )
    return name


def adapter_path(root: Path, name: str) -> Path:
    """The folder of adapter ``name`` under ``root`` (``.ragtune/adapters``)."""
    return Path(root) / check_name(name)


def staging_path(out_dir: Path) -> Path:
    """Where a run writes the adapter before it is renamed into ``out_dir``."""
    return out_dir.parent / f".{out_dir.name}.tmp"


def checkpoint_path(out_dir: Path) -> Path:
    """Where a run keeps its resumable checkpoint for the adapter ``out_dir``."""
    return out_dir.parent / f".{out_dir.name}.checkpoint"


def recover_interrupted_swaps(root: Path) -> list[str]:
    """Put back an adapter whose replacement was interrupted between its two renames.

    Training renames the active adapter to ``.<name>.old`` and then the new one into place; a
    crash in between leaves only ``.old``. Returns the names restored.
    """
    restored = []
    if root.is_dir():
        for old in root.glob(".*.old"):
            target = root / old.name[1 : -len(".old")]
            if not target.exists():
                old.rename(target)
                restored.append(target.name)
    return restored


def list_adapters(root: Path) -> list[AdapterInfo]:
    """The finished adapters under ``root``, by name.

    Args:
        root: The adapters folder, normally ``.ragtune/adapters``; a missing folder holds none.

    Returns:
        One :class:`AdapterInfo` per folder holding a ``ragtune.json``; work in progress
        (dot folders) and foreign folders are skipped.

    Raises:
        AdapterError: A manifest is not valid JSON (names the file).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    recover_interrupted_swaps(root)
    found = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        found.append(
            AdapterInfo(
                name=folder.name,
                path=folder,
                manifest=AdapterManifest.read(folder),
                size_bytes=sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
            )
        )
    return found


def load_manifest(root: Path, name: str) -> AdapterManifest:
    """The ``ragtune.json`` of adapter ``name``.

    Raises:
        AdapterError: No adapter of that name (lists the known ones and the closest), or its
            manifest cannot be read.
    """
    return AdapterManifest.read(_existing(root, name))


def remove_adapter(root: Path, name: str) -> Path:
    """Delete adapter ``name``, with any checkpoint or unfinished run of it.

    Returns:
        The folder that was removed.

    Raises:
        AdapterError: No adapter of that name (lists the known ones and the closest).
    """
    folder = _existing(root, name)
    shutil.rmtree(folder)
    for leftover in (staging_path(folder), checkpoint_path(folder)):
        shutil.rmtree(leftover, ignore_errors=True)
    return folder


def _existing(root: Path, name: str) -> Path:
    """The folder of an existing adapter, or an error naming the ones that exist."""
    folder = adapter_path(root, name)
    if (folder / MANIFEST).is_file():
        return folder
    known = [info.name for info in list_adapters(root)]
    close = closest(name, known)
    hint = f" Did you mean {close!r}?" if close else ""
    listed = ", ".join(known) if known else "none (train one with `ragtune adapter train`)"
    raise AdapterError(f"no adapter named {name!r} in {root}.{hint} Adapters: {listed}.")
