"""What an adapter was made from: ``ragtune.json``, one dataclass written and read whole.

As PEFT saves its config beside the weights, every adapter saves an :class:`AdapterManifest`:
the base model, the examples, the settings, the retrieved context, how the run went and how the
adapter scored. ``plan`` reads it to tell what is stale, the local backend to refuse an adapter
of another base model, the runtime to lay out passages as they were trained.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError

__all__ = [
    "MANIFEST",
    "AdapterError",
    "AdapterManifest",
    "BaseModelRecord",
    "ContextRecord",
    "DatasetRecord",
    "ScoreRecord",
    "TrainingRecord",
]

MANIFEST = "ragtune.json"


class AdapterError(RagtuneError):
    """An adapter cannot be found, read or removed; names the adapter and what exists."""


def _known(cls: type, data: Any) -> dict[str, Any]:
    """The entries of a manifest section that ``cls`` has fields for (older or hand-written
    manifests may lack some: the fields' defaults stand in)."""
    if not isinstance(data, dict):
        return {}
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class BaseModelRecord:
    """The base model an adapter was trained on: its name and the hash of its files."""

    name: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class DatasetRecord:
    """The examples an adapter was trained on.

    Attributes:
        path: The examples file, relative to the project.
        sha256: Hash of the examples' content (:func:`ragtune.behavior.examples.dataset_hash`).
        file_sha256: Hash of the file's bytes, as ``plan`` compares it.
        examples: Examples in the file.
        train: Examples trained on.
        held_out: Examples kept out for evaluation.
        truncated: Examples whose prompt was cut at ``max_length``.
        inputs: :func:`ragtune.holdout.input_key` of every input trained on (not those held
            out), so the lab can tell the requests an adapter has seen from those it has not.
    """

    path: str = ""
    sha256: str = ""
    file_sha256: str = ""
    examples: int = 0
    train: int = 0
    held_out: int = 0
    truncated: int = 0
    inputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingRecord:
    """How the run went: steps, loss, time, memory and where it ran."""

    steps: int = 0
    resumed: bool = False
    final_loss: float | None = None
    seconds: float | None = None
    seconds_per_step: float | None = None
    tokens_per_second: float | None = None
    peak_rss_mb: float | None = None
    device: str = "cpu"
    processes: int = 1


@dataclass(frozen=True)
class ScoreRecord:
    """A model's scores on the held-out split, with the first few answers to look at."""

    examples: int = 0
    exact_match: float = 0.0
    compliance: float | None = None
    guided_compliance: float | None = None
    sample_outputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContextRecord:
    """What the retrieved context of context-aware (RAFT) training was made from.

    Attributes:
        capabilities: The knowledge capabilities searched (``from`` in the JSON).
        snapshot: The knowledge snapshot searched.
        passages: Passages in each prompt.
        oracle_share: Share of examples whose context holds their relevant passage.
        chars: Characters each passage was clipped to.
        with_oracle: Examples whose context held their relevant passage.
        quoted: One entry per chunk placed in a prompt: ``chunk_id``, ``document``,
            ``section`` and ``text_hash`` (``plan`` warns when they are no longer live).
        counterfactual: Examples whose figures were changed in context and answer alike.
    """

    capabilities: list[str] = field(default_factory=list)
    snapshot: int = 0
    passages: int = 0
    oracle_share: float = 0.0
    chars: int = 0
    with_oracle: int = 0
    quoted: list[dict[str, str]] = field(default_factory=list)
    counterfactual: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``context`` entry."""
        data = asdict(self)
        return {"from": data.pop("capabilities"), **data}

    @classmethod
    def from_dict(cls, data: Any) -> ContextRecord:
        """Read the manifest's ``context`` entry."""
        known = _known(cls, data)
        if isinstance(data, dict) and isinstance(data.get("from"), list):
            known["capabilities"] = data["from"]
        return cls(**known)


# The manifest's top-level entries, in the order they are written.
_MANIFEST_KEYS = (
    "format", "ragtune_version", "created_at", "base_model", "dataset", "knowledge_snapshot",
    "context", "contract", "gguf_lora", "config", "training", "metrics",
)  # fmt: skip


@dataclass(frozen=True)
class AdapterManifest:
    """``ragtune.json``: what an adapter was made from and how well it did.

    Every field a later step needs - ``plan`` to tell what is stale, the local backend to refuse
    an adapter of another base model, the runtime to lay out passages as they were trained -
    is typed here; a manifest written by an older ragtune reads with the missing fields at their
    defaults, and entries this version does not know are kept in ``extra`` and written back.

    Attributes:
        base_model: The base model trained on.
        dataset: The examples trained on.
        config: The :class:`TrainConfig` as JSON values (kept as read: a setting this version
            no longer has still shows in ``plan`` as changed).
        training: How the run went.
        base_metrics: The base model on the held-out split (None: evaluation was skipped).
        adapter_metrics: The adapter on the held-out split.
        knowledge_snapshot: The knowledge snapshot the examples reflect, when known.
        context: The retrieved context trained with (context-aware adapters only).
        contract: The output contract's source, when the capability has one.
        gguf_lora: SHA-256 of ``adapter.gguf``, the adapter written as a GGUF LoRA for the
            llama.cpp backend; None when it has none (a base model that is not a GGUF).
        created_at: ISO time of the save.
        ragtune_version: The ragtune that trained it.
        format: The manifest's format version.
        extra: Entries this version does not know, kept as read.
    """

    base_model: BaseModelRecord = field(default_factory=BaseModelRecord)
    dataset: DatasetRecord = field(default_factory=DatasetRecord)
    config: dict[str, Any] = field(default_factory=dict)
    training: TrainingRecord = field(default_factory=TrainingRecord)
    base_metrics: ScoreRecord | None = None
    adapter_metrics: ScoreRecord | None = None
    knowledge_snapshot: str | None = None
    context: ContextRecord | None = None
    contract: str | None = None
    gguf_lora: str | None = None
    created_at: str = ""
    ragtune_version: str = ""
    format: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as written to ``ragtune.json``."""
        data: dict[str, Any] = {
            "format": self.format,
            "ragtune_version": self.ragtune_version,
            "created_at": self.created_at,
            "base_model": asdict(self.base_model),
            "dataset": asdict(self.dataset),
            "knowledge_snapshot": self.knowledge_snapshot,
            "context": self.context.to_dict() if self.context is not None else None,
            "contract": self.contract,
            "gguf_lora": self.gguf_lora,
            "config": dict(self.config),
            "training": asdict(self.training),
            "metrics": {
                "base": asdict(self.base_metrics) if self.base_metrics else None,
                "adapter": asdict(self.adapter_metrics) if self.adapter_metrics else None,
            },
        }
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterManifest:
        """Read a manifest's JSON object; missing entries take their defaults."""
        metrics = data.get("metrics")
        sides = metrics if isinstance(metrics, dict) else {}
        scores = {
            side: ScoreRecord(**_known(ScoreRecord, sides[side]))
            if isinstance(sides.get(side), dict)
            else None
            for side in ("base", "adapter")
        }
        context = data.get("context")
        snapshot = data.get("knowledge_snapshot")
        return cls(
            base_model=BaseModelRecord(**_known(BaseModelRecord, data.get("base_model"))),
            dataset=DatasetRecord(**_known(DatasetRecord, data.get("dataset"))),
            config=dict(data["config"]) if isinstance(data.get("config"), dict) else {},
            training=TrainingRecord(**_known(TrainingRecord, data.get("training"))),
            base_metrics=scores["base"],
            adapter_metrics=scores["adapter"],
            knowledge_snapshot=None if snapshot is None else str(snapshot),
            context=ContextRecord.from_dict(context) if isinstance(context, dict) else None,
            contract=data.get("contract"),
            gguf_lora=data.get("gguf_lora"),
            created_at=str(data.get("created_at") or ""),
            ragtune_version=str(data.get("ragtune_version") or ""),
            format=int(data.get("format") or 1),
            extra={k: v for k, v in data.items() if k not in _MANIFEST_KEYS},
        )

    def write(self, folder: Path) -> Path:
        """Write ``ragtune.json`` into ``folder``; returns its path."""
        path = Path(folder) / MANIFEST
        path.write_text(
            json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return path

    @classmethod
    def read(cls, folder: Path) -> AdapterManifest:
        """Read ``ragtune.json`` from an adapter folder.

        Raises:
            AdapterError: It cannot be read or is not a JSON object (names the file).
        """
        path = Path(folder) / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AdapterError(f"{path}: cannot read the adapter manifest: {exc}") from exc
        if not isinstance(data, dict):
            raise AdapterError(f"{path}: the adapter manifest is not a JSON object.")
        return cls.from_dict(data)
