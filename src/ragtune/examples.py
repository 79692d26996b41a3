"""The example projects shipped with ragtune (``examples/`` in a checkout, packaged in a wheel)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ragtune.errors import RagtuneError

_CHECKOUT = Path(__file__).resolve().parents[2] / "examples"
_PACKAGED = Path(__file__).resolve().parent / "_examples"


def examples_root() -> Path:
    """The folder holding the example projects."""
    return _CHECKOUT if _CHECKOUT.is_dir() else _PACKAGED


def list_examples() -> list[str]:
    """Names of the shipped example projects."""
    root = examples_root()
    return (
        sorted(p.name for p in root.iterdir() if (p / "ragtune.yaml").is_file())
        if root.is_dir()
        else []
    )


def example_path(name: str) -> Path:
    """The folder of one example project."""
    path = examples_root() / name
    if not (path / "ragtune.yaml").is_file():
        known = ", ".join(list_examples()) or "none found"
        raise RagtuneError(f"unknown example {name!r}; the examples are: {known}.")
    return path


def copy_example(name: str, dest: Path, *, force: bool = False) -> Path:
    """Copy an example project into ``dest`` (which must not hold a project unless ``force``).

    The copy goes to a temporary folder beside ``dest`` first and is renamed into place, so an
    interruption never leaves half an example behind.
    """
    source = example_path(name)
    if (dest / "ragtune.yaml").exists() and not force:
        raise RagtuneError(
            f"{dest / 'ragtune.yaml'} already exists; pass --force to overwrite the example there."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".ragtune", "__pycache__"))
    if not dest.exists():
        tmp.rename(dest)
        return dest
    # Merge into an existing folder: replace only what the example brings.
    for item in tmp.iterdir():
        target = dest / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        item.rename(target)
    tmp.rmdir()
    return dest
