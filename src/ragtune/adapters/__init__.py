"""Adapters as artifacts: how one is trained, what it was made from, where it is kept.

Below the stages that make and serve adapters (training in :mod:`ragtune.behavior.train`, the
plan in :mod:`ragtune.behavior.staleness`, generation in :mod:`ragtune.generate.local`) and
above nothing but the project's errors, so each of them and ``project.py`` can read it:
:mod:`~ragtune.adapters.config` (the settings of a run), :mod:`~ragtune.adapters.manifest`
(``ragtune.json``) and :mod:`~ragtune.adapters.registry` (the adapters folder). No torch.
"""

from ragtune.adapters.config import TrainConfig, TrainError
from ragtune.adapters.manifest import (
    MANIFEST,
    AdapterError,
    AdapterManifest,
    BaseModelRecord,
    ContextRecord,
    DatasetRecord,
    ScoreRecord,
    TrainingRecord,
)
from ragtune.adapters.registry import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    AdapterInfo,
    adapter_path,
    check_name,
    checkpoint_path,
    list_adapters,
    load_manifest,
    recover_interrupted_swaps,
    remove_adapter,
    staging_path,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "MANIFEST",
    "AdapterError",
    "AdapterInfo",
    "AdapterManifest",
    "BaseModelRecord",
    "ContextRecord",
    "DatasetRecord",
    "ScoreRecord",
    "TrainConfig",
    "TrainError",
    "TrainingRecord",
    "adapter_path",
    "check_name",
    "checkpoint_path",
    "list_adapters",
    "load_manifest",
    "recover_interrupted_swaps",
    "remove_adapter",
    "staging_path",
]
