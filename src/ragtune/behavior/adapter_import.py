"""Bring in a PEFT LoRA adapter that ragtune did not train (``ragtune adapter import``).

The folder's ``adapter_config.json`` and ``adapter_model.safetensors`` are copied into
``.ragtune/adapters/<name>/``, checked against the project's base model - every LoRA matrix must
fit the layer it adapts, so an adapter made for another model is refused with the layer and the
two shapes - written as a GGUF LoRA when the base model is a GGUF (for the llama.cpp backend),
and given a manifest that says it was imported and from where. The adapter appears whole or not
at all, as a trained one does.

No torch: shapes are read from the GGUF's header and the adapter's safetensors header.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ragtune import __version__
from ragtune.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    AdapterError,
    AdapterManifest,
    BaseModelRecord,
    adapter_path,
    staging_path,
)
from ragtune.behavior.checkpoint import swap_into_place
from ragtune.project import Project

__all__ = ["ImportedAdapter", "import_adapter"]


@dataclass(frozen=True)
class ImportedAdapter:
    """What :func:`import_adapter` made: the adapter's folder, its manifest, and how many
    LoRA layers it carries."""

    path: Path
    manifest: AdapterManifest
    layers: int


def import_adapter(
    project: Project, source: Path, name: str, *, force: bool = False
) -> ImportedAdapter:
    """Import the PEFT LoRA folder ``source`` as adapter ``name`` of the project.

    Raises:
        AdapterError: Not a PEFT LoRA folder (names the file), a name that exists (without
            ``force``), a matrix that does not fit the base model (names the layer and both
            shapes), or an adapter llama.cpp cannot hold (DoRA, trained embeddings).
    """
    from ragtune.generate.base import model_sha256, resolve_base_model
    from ragtune.generate.gguf_lora import GgufLoraError, base_shape, write_gguf_lora

    source = Path(source)
    for required in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (source / required).is_file():
            raise AdapterError(
                f"{source}: no {required}, so it is not a PEFT adapter folder (it needs "
                f"{ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}; .bin pickles are not read)."
            )
    target = adapter_path(project.adapters_dir, name)
    if target.exists() and not force:
        raise AdapterError(f"adapter {name!r} exists ({target}); pass --force to replace it.")
    spec = resolve_base_model(project.config.model.base_model)
    stage = staging_path(target)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        for required in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            shutil.copy2(source / required, stage / required)
        layers = _check_shapes(stage, spec.gguf_path) if spec.gguf_path else 0
        gguf_sha = None
        if spec.gguf_path is not None:
            try:
                gguf_sha = write_gguf_lora(stage, base_shape(spec.gguf_path))
            except GgufLoraError as exc:
                raise AdapterError(str(exc)) from exc
        manifest = AdapterManifest(
            base_model=BaseModelRecord(spec.name, model_sha256(spec)),
            gguf_lora=gguf_sha,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            ragtune_version=__version__,
            extra={"imported_from": str(source.resolve())},
        )
        manifest.write(stage)
        swap_into_place(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ImportedAdapter(target, manifest, layers)


def _check_shapes(folder: Path, gguf_path: Path) -> int:
    """Every LoRA matrix against the base layer it adapts; returns the layers adapted."""
    import gguf
    from safetensors import safe_open

    from ragtune.generate.gguf_lora import base_shape

    shape = base_shape(gguf_path)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[shape.arch.upper()], shape.blocks)
    base = {
        t.name: [int(d) for d in reversed(t.shape.tolist())]
        for t in gguf.GGUFReader(str(gguf_path)).tensors
    }
    layers = set()
    with safe_open(str(folder / ADAPTER_WEIGHTS), "np") as weights:
        keys = weights.keys()  # a safetensors file handle, not a dict
        for key in keys:
            layer = key.removeprefix("base_model.model.").split(".lora_")[0]
            target = names.get_name(layer + ".weight", try_suffixes=(".weight",))
            if target is None or target not in base:
                raise AdapterError(
                    f"{folder.name}: layer {layer!r} is not a layer of the base model "
                    f"({gguf_path.name}); was the adapter trained on another model?"
                )
            rows, cols = base[target]
            got = list(weights.get_slice(key).get_shape())
            side = ".lora_A." in key
            fits = got[1] == cols if side else got[0] == rows
            if not fits:
                raise AdapterError(
                    f"{folder.name}: {key} is {got[0]}x{got[1]} but the base model's {target} is "
                    f"{rows}x{cols}: the adapter was trained on another model."
                )
            layers.add(target)
    return len(layers)
