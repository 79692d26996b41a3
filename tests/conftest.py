"""Shared fixtures: small projects written into a temporary folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pg import fresh_database, postgres_server  # noqa: F401  (a real PostgreSQL, tests/pg.py)

if TYPE_CHECKING:
    from ragtune.knowledge.embed import Embedder
    from ragtune.runtime.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def write_project(tmp_path: Path) -> Callable[[str], Path]:
    """Write a ragtune.yaml (dedented) into a fresh folder and return the folder."""

    def write(text: str, name: str = "ragtune.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return tmp_path

    return write


@pytest.fixture
def synced_runtime(
    write_project: Callable[[str], Path],
) -> Iterator[Callable[..., Runtime]]:
    """Write a project with its documents (``{"docs/lease.md": text}``), sync its knowledge
    with ``embedder`` and return its runtime; every runtime made is closed after the test."""
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.project import load_project
    from ragtune.runtime.runtime import Runtime

    made: list[Runtime] = []

    def make(project: str, documents: dict[str, str], embedder: Embedder) -> Runtime:
        folder = write_project(project)
        for name, text in documents.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        loaded = load_project(folder)
        KnowledgeBase(loaded, embedder=embedder).sync()
        made.append(Runtime(loaded, embedder=embedder))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


@pytest.fixture(scope="session")
def base_model(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    """The packaged base model, loaded once per session; its de-quantised weights are kept in
    pytest's cache across runs (20 s the first time, about 1 s after)."""
    from ragtune.generate.base import load_base_model

    return load_base_model(cache_root=pytestconfig.cache.mkdir("ragtune-models"))


@pytest.fixture(scope="session")
def example_project(pytestconfig: pytest.Config) -> Callable[..., Path]:
    """Copy the contract-review example (without its state) into a folder; return the folder.

    ``embedder`` replaces the example's embedder (``hashing`` where a test is about logic, not
    semantics); ``store`` puts its knowledge elsewhere (a ``postgresql://`` URL); ``sync``
    indexes its knowledge; ``install`` copies in adapters the example ships (as ``ragtune
    build`` installs them); ``shared_models`` links its model cache to pytest's, the one
    :func:`base_model` fills (20 s the first time, about 1 s after); ``answer="generate"`` has
    the model write the templates' answers rather than quote them (for a test of generation
    through the runtime: prompts, sampling fields, streams).
    """
    import shutil

    from ragtune.examples import copy_example
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.project import load_project

    def copy(
        dest: Path,
        *,
        embedder: str | None = None,
        store: str | None = None,
        sync: bool = False,
        install: tuple[str, ...] = (),
        shared_models: bool = False,
        answer: str | None = None,
    ) -> Path:
        folder = copy_example("contract-review", dest)
        if answer is not None:
            config = folder / "ragtune.yaml"
            config.write_text(config.read_text().replace("answer: quote", f"answer: {answer}", 1))
        knowledge = {"embedder": embedder, "store": store}
        if any(knowledge.values()):
            config = folder / "ragtune.yaml"
            lines = "".join(f"  {k}: {v}\n" for k, v in knowledge.items() if v is not None)
            config.write_text(config.read_text() + f"knowledge:\n{lines}")
        for name in install:
            shutil.copytree(folder / "adapters" / name, folder / ".ragtune" / "adapters" / name)
        if sync:
            kb = KnowledgeBase(load_project(folder))
            try:
                kb.sync()
            finally:
                kb.close()
        if shared_models:
            models = folder / ".ragtune" / "models"
            models.parent.mkdir(exist_ok=True)
            models.symlink_to(pytestconfig.cache.mkdir("ragtune-models"), target_is_directory=True)
        return folder

    return copy


@pytest.fixture(scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """Generation with one torch thread for the module: two threads fighting other work for
    the two cores decode several times slower than one that does not."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
