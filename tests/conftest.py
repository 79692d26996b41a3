"""Shared fixtures: small projects written into a temporary folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def base_model(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    """The packaged base model, loaded once per session; its de-quantised weights are kept in
    pytest's cache across runs (20 s the first time, about 1 s after)."""
    from ragtune.generate.base import load_base_model

    return load_base_model(cache_root=pytestconfig.cache.mkdir("ragtune-models"))
