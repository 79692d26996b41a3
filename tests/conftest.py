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
