"""A PEFT LoRA adapter written as a GGUF LoRA, the form llama.cpp applies to a GGUF base model.

PEFT saves, per adapted layer, ``lora_A`` (rank x in) and ``lora_B`` (out x rank) under the
Hugging Face layer name (``base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight``).
llama.cpp wants the same two matrices under the GGUF tensor name of the layer with ``.lora_a``
and ``.lora_b`` appended (``blk.3.attn_q.weight.lora_a``), the file typed as an adapter, and
``adapter.lora.alpha``; it scales the update by alpha / rank, as PEFT does.

One thing differs from copying: llama.cpp's converter permutes the rows of a LLaMA-family
model's query and key projections (the rotary layout it computes with), so the ``lora_B`` of
``q_proj`` and ``k_proj`` - which writes those rows - is permuted the same way, with the head
counts read from the base GGUF. The names come from the ``gguf`` package's own tensor map
(:func:`gguf.get_tensor_name_map`), the library llama.cpp's converters use.

No torch: the weights are read with ``safetensors.numpy``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError

__all__ = ["GGUF_LORA", "BaseShape", "GgufLoraError", "base_shape", "write_gguf_lora"]

GGUF_LORA = "adapter.gguf"
"""The GGUF LoRA's file name inside an adapter folder."""

_ROTARY = {"attn_q": "head_count", "attn_k": "head_count_kv"}


class GgufLoraError(RagtuneError):
    """An adapter cannot be written as a GGUF LoRA: names the file and what is wrong."""


@dataclass(frozen=True)
class BaseShape:
    """What the conversion needs to know of the base GGUF.

    Attributes:
        arch: ``general.architecture`` (``llama`` for SmolLM2).
        blocks: Transformer blocks.
        head_count: Attention heads.
        head_count_kv: Key/value heads.
    """

    arch: str
    blocks: int
    head_count: int
    head_count_kv: int


def base_shape(gguf_path: Path) -> BaseShape:
    """Read the architecture and head counts of a base model's GGUF.

    Raises:
        GgufLoraError: The file is not a GGUF model, or lacks what is needed (names the key).
    """
    import gguf

    try:
        reader = gguf.GGUFReader(str(gguf_path))
    except (OSError, ValueError) as exc:
        raise GgufLoraError(f"{gguf_path}: not a GGUF model file: {exc}") from exc

    def value(key: str) -> Any:
        field = reader.get_field(key)
        if field is None:
            raise GgufLoraError(f"{gguf_path}: the GGUF has no {key!r}, so it is not a model.")
        return field.contents()

    arch = str(value("general.architecture"))
    return BaseShape(
        arch=arch,
        blocks=int(value(f"{arch}.block_count")),
        head_count=int(value(f"{arch}.attention.head_count")),
        head_count_kv=int(value(f"{arch}.attention.head_count_kv")),
    )


def write_gguf_lora(adapter_dir: Path, base: BaseShape, out: Path | None = None) -> str:
    """Write the PEFT adapter in ``adapter_dir`` as a GGUF LoRA; return the file's SHA-256.

    Args:
        adapter_dir: A PEFT LoRA folder (``adapter_config.json``, ``adapter_model.safetensors``).
        base: The base GGUF's shape (:func:`base_shape`).
        out: The file to write (default: ``adapter.gguf`` in ``adapter_dir``); it appears whole
            or not at all.

    Raises:
        GgufLoraError: Not a LoRA folder, a layer llama.cpp has no name for, or DoRA (which a
            GGUF LoRA cannot hold).
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = _lora_config(adapter_dir)
    alpha = float(config["lora_alpha"])
    if config.get("use_rslora"):
        # rsLoRA scales by alpha / sqrt(r); llama.cpp by alpha / r: the same update needs r/sqrt(r).
        alpha *= math.sqrt(float(config["r"]))
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[base.arch.upper()], base.blocks)
    pairs: dict[str, dict[str, Any]] = {}
    for key, array in weights.items():
        side = "a" if ".lora_A." in key else "b" if ".lora_B." in key else None
        if side is None:
            raise GgufLoraError(
                f"{adapter_dir}: tensor {key!r} is not a LoRA matrix (lora_A or lora_B); "
                "adapters that also train embeddings or norms cannot be served by llama.cpp."
            )
        layer = key.removeprefix("base_model.model.").split(".lora_")[0]
        target = names.get_name(layer + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise GgufLoraError(
                f"{adapter_dir}: layer {layer!r} has no llama.cpp name for a {base.arch} model."
            )
        pairs.setdefault(target, {})[side] = np.ascontiguousarray(array, dtype=np.float32)

    tmp = (out or adapter_dir / GGUF_LORA).with_suffix(f".{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), base.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for target, pair in sorted(pairs.items()):
        if set(pair) != {"a", "b"}:
            raise GgufLoraError(f"{adapter_dir}: {target} has lora_{''.join(pair)} only.")
        lora_b = pair["b"]
        role = target.split(".")[2]  # blk.<n>.<role>.weight
        if base.arch == "llama" and role in _ROTARY:
            lora_b = _permute(lora_b, getattr(base, _ROTARY[role]))
        writer.add_tensor(f"{target}.lora_a", pair["a"])
        writer.add_tensor(f"{target}.lora_b", lora_b)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    final = out or adapter_dir / GGUF_LORA
    tmp.replace(final)
    return hashlib.sha256(final.read_bytes()).hexdigest()


def _lora_config(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GgufLoraError(f"{path}: cannot read the adapter's config: {exc}") from exc
    if config.get("peft_type", "LORA") != "LORA" or "lora_alpha" not in config:
        raise GgufLoraError(f"{path}: not a LoRA adapter (peft_type {config.get('peft_type')!r}).")
    if config.get("use_dora"):
        raise GgufLoraError(f"{path}: a DoRA adapter cannot be written as a GGUF LoRA.")
    return dict(config)


def _permute(rows: Any, heads: int) -> Any:
    """The row order llama.cpp's converter gives a LLaMA query/key projection: within each
    head, the two rotary halves interleaved."""
    shape = rows.shape
    return rows.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
