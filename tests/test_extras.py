"""The light install and the extras: one table of what each part needs, the same as
pyproject.toml's, and a missing package named with the ``pip install`` line that brings it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

from ragtune.extras import EXTRAS, extra_of, installed, missing_extra

ROOT = Path(__file__).resolve().parents[1]


def names(requirements: list[str]) -> set[str]:
    """The distribution names of requirement strings, less ragtune's own extras."""
    found = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}
    return found - {"ragtune"}


def test_the_extras_table_is_pyprojects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {"core": project["dependencies"], **project["optional-dependencies"]}
    for extra, packages in EXTRAS.items():
        assert {pip.lower() for _, pip in packages} == names(declared[extra]), extra
    assert names(declared["all"]) == set()  # only ragtune's own extras
    assert "ragtune[knowledge,train,serve]" in declared["all"]


def test_a_missing_package_names_its_extra() -> None:
    assert extra_of("transformers.models.llama") == "train"
    assert extra_of("usearch") == "knowledge" and extra_of("fastapi") == "serve"
    assert extra_of("json") is None and extra_of(None) is None
    message = missing_extra(ModuleNotFoundError("No module named 'peft'", name="peft"))
    assert message is not None and "pip install 'ragtune[train]'" in message
    assert missing_extra(ModuleNotFoundError("x", name="yaml")) is None  # core: a broken install
    assert missing_extra(ModuleNotFoundError("x", name="nosuchthing")) is None
    assert installed("core") and installed("knowledge")


@pytest.mark.slow
def test_the_light_install_audits_without_torch(tmp_path: Path) -> None:
    """``pip install ragtune`` (no extras) into a fresh virtual environment: the audit of the
    example runs, torch is not there, and a command that needs an extra says which."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    quiet = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(ROOT)],
        check=True,
        env=quiet,
        timeout=900,
    )
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, env=quiet
    ).stdout.lower()
    for heavy in ("torch", "transformers", "sentence-transformers", "usearch", "fastapi"):
        assert f"\n{heavy}==" not in f"\n{listed}", heavy

    ragtune = env_dir / "bin" / "ragtune"
    example = ROOT / "examples" / "contract-review"
    audit = subprocess.run(
        [ragtune, "audit", str(example), "--json"], capture_output=True, text=True, timeout=300
    )
    assert audit.returncode == 0, audit.stderr
    assert '"decision": "lora"' in audit.stdout
    copy = tmp_path / "cr"
    shutil.copytree(example, copy)
    sync = subprocess.run(
        [ragtune, "knowledge", "sync", "-p", str(copy)], capture_output=True, text=True, timeout=300
    )
    assert sync.returncode == 2, (sync.stdout, sync.stderr)
    assert "pip install 'ragtune[knowledge]'" in sync.stderr
    assert "Traceback" not in sync.stderr
    for command, extra in (
        (["serve"], "serve"),
        (["adapter", "train", "risk_flags", "--no-context"], "train"),
    ):
        refused = subprocess.run(
            [ragtune, *command, "-p", str(copy)], capture_output=True, text=True, timeout=300
        )
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert f"pip install 'ragtune[{extra}]'" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
