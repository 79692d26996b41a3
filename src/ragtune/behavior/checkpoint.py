"""The adapter folder on disk, kept whole: resumable checkpoints, the staged swap into place,
and no pickles.

A run writes into ``.<name>.tmp`` and swaps it into place only when it finished; a checkpoint
(``.<name>.checkpoint``) holds the LoRA weights as safetensors and the optimiser and RNG states
as tensors and plain values, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, cast

from ragtune.adapters import ADAPTER_WEIGHTS, TrainError

__all__ = ["load_checkpoint", "refuse_pickles", "save_checkpoint", "swap_into_place"]

# Files that would mean a pickle landed in an adapter folder: loading a pickle runs code.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def save_checkpoint(
    folder: Path, model: Any, optimizer: Any, step: int, identity: dict[str, Any]
) -> None:
    """Adapter weights (safetensors), optimiser state and RNG states; replaced whole."""
    import numpy as np
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, str(tmp / ADAPTER_WEIGHTS))
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    # Tensors and plain values only, so the file loads with torch.load(weights_only=True).
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        },
        tmp / "state.pt",
    )
    (tmp / "checkpoint.json").write_text(json.dumps({"step": step, **identity}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_checkpoint(folder: Path, model: Any, optimizer: Any, identity: dict[str, Any]) -> int:
    """Restore a checkpoint into the model and optimiser; return the step it was taken at."""
    import numpy as np
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta_file = folder / "checkpoint.json"
    if not meta_file.is_file():
        raise TrainError(
            f"nothing to resume: {folder} holds no checkpoint; train without --resume."
        )
    meta = json.loads(meta_file.read_text())
    for key, wanted in identity.items():
        if meta.get(key) != wanted:
            what = {"config": "settings", "dataset_sha256": "examples"}.get(key, "base model")
            raise TrainError(
                f"cannot resume from {folder}: it was made with other {what} ({key} differs); "
                "train without --resume to start over."
            )
    set_peft_model_state_dict(model, load_file(str(folder / ADAPTER_WEIGHTS)))
    state = torch.load(folder / "state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    version, keys, *rest = state["python_rng"]
    random.setstate((version, tuple(keys), *rest))
    name, array, *others = state["numpy_rng"]
    np.random.set_state((name, np.asarray(array, dtype=np.uint32), *others))
    return int(meta["step"])


def refuse_pickles(folder: Path) -> None:
    """Fail when anything that could be a pickle landed in the adapter folder."""
    found = [p.name for p in folder.rglob("*") if p.suffix.lower() in _PICKLE_SUFFIXES]
    if found:
        raise TrainError(f"{folder}: refusing to keep pickle files in an adapter: {found}")


def swap_into_place(stage: Path, target: Path) -> None:
    """Make ``stage`` the adapter at ``target``; the old one goes only once the new is there."""
    old = target.with_name(f".{target.name}.old")
    if old.exists() and not target.exists():
        old.rename(target)  # an earlier swap died between its renames: the old one is active
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    stage.rename(target)
    shutil.rmtree(old, ignore_errors=True)
