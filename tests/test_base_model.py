"""The base model: found offline, de-quantised once, cached, and loaded from the cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ragtune.generate.base import (
    DEFAULT_BASE_MODEL,
    ModelError,
    cache_folder,
    load_base_model,
    model_sha256,
    resolve_base_model,
)


def test_default_model_is_found_in_its_package() -> None:
    spec = resolve_base_model()
    assert spec.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert spec.folder is not None and (spec.folder / spec.gguf_file).is_file()
    assert len(model_sha256(spec)) == 64


def test_bad_model_names_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file or folder"):
        resolve_base_model("./missing-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_base_model(str(tmp_path / "empty"))
    assert resolve_base_model("HuggingFaceTB/SmolLM2-135M").hub_id == "HuggingFaceTB/SmolLM2-135M"


@pytest.mark.slow
def test_dequantised_once_then_loaded_from_the_cache(tmp_path: Path) -> None:
    first = load_base_model(cache_root=tmp_path)
    assert not first.from_cache
    folder = cache_folder(first.spec, tmp_path, first.sha256)
    assert (folder / "model.safetensors").is_file() and (folder / "ragtune.json").is_file()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    params = sum(p.numel() for p in first.model.parameters())
    assert 130e6 < params < 140e6  # SmolLM2-135M
    started = time.perf_counter()
    second = load_base_model(DEFAULT_BASE_MODEL, cache_root=tmp_path)
    assert second.from_cache and time.perf_counter() - started < 10
    assert second.sha256 == first.sha256
    tokenizer, model = second.tokenizer, second.model
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
