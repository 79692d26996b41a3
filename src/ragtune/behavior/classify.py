"""Label classifiers: which value of one field of a JSON answer, decided by a small tuned embedder.

A behaviour capability often answers with a label from a fixed list - the risk flag's CUAD
category is one of 41 - and a 135M-parameter adapter chooses it less well than the team's own
labelled examples can: on the example's 30 new clauses the adapter names 80% of the categories,
while the centroid of each category's examples, once the embedder is tuned on their labels,
names 93% (README, "Behaviour in weights"). ``classify: <field>`` in ragtune.yaml gives a
capability such a classifier, made the way SetFit makes one (Tunstall et al., 2022, "Efficient
Few-Shot Learning Without Prompts"): a LoRA on the project's sentence-transformers embedder is
tuned so that examples with the same label sit together (a contrastive loss over pairs of the
same label, the other pairs of the batch as negatives), and each label is the mean of its
training examples' tuned vectors (a nearest-centroid head). It trains in about 45 seconds on two
cores.

At serving time (:func:`ragtune.runtime.pipeline.guide_schema`) the classifier picks the field's
value and the decoding is guided with the field's ``enum`` cut to that value: the adapter writes
the rest of the answer (risk, rationale) after it. The answer is still checked against the whole
contract.

- The labels come from the examples' outputs (JSON objects), and must be among the ``enum`` of
  the field in the capability's JSON Schema contract; a bad line is named with its file, line
  and value.
- The classifier trains on the training side of the adapter's split (``train.held_out``,
  ``train.seed``) and reports its accuracy on the held-out side, which it never learns from.
  The lab leaves it out (``Runtime(classifiers=False)``): its arms are the strategies alone.
- It is written whole to ``.ragtune/classifiers/<capability>/`` (a staging folder swapped into
  place) with a manifest (``classifier.json``) recording the examples' hash, the field, the
  embedder and the settings; :func:`classifier_plan` says when one of those changed.
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as default
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ragtune.behavior.examples import Example
    from ragtune.project import Capability, ClassifySettings, Project

__all__ = [
    "CLASSIFIERS",
    "MANIFEST",
    "Classifier",
    "ClassifierError",
    "ClassifierManifest",
    "ClassifierPlan",
    "classifier_dir",
    "classifier_plan",
    "field_labels",
    "labelled",
    "train_classifier",
]

CLASSIFIERS = "classifiers"
"""The folder under ``.ragtune/`` holding one classifier per capability."""

MANIFEST = "classifier.json"
"""The manifest inside a classifier's folder."""

_CENTROIDS = "centroids.npy"
_LORA = "lora"

Progress = Callable[[int, int, float], None]
"""Called after each training step with ``(done, total, loss)``, as the adapter trainer calls
its progress bar."""


class ClassifierError(RagtuneError):
    """A classifier cannot be trained or loaded: the file, line, field or value is named."""


@dataclass(frozen=True)
class ClassifierManifest:
    """What a trained classifier records (``classifier.json``).

    Attributes:
        capability: The capability it serves.
        field: The field of the JSON answer it decides.
        labels: The labels it can give (those with at least one training example), in the
            contract's order.
        examples_sha256: The hash of the examples file it was trained from.
        embedder: The embedder spec it tuned (the project's ``knowledge.embedder``).
        settings: The tuning settings it was trained with
            (:meth:`ragtune.project.ClassifySettings.tuning`).
        held_out: The share and seed of the split (the adapter's).
        trained: Training examples used.
        tested: Held-out examples it was scored on.
        held_out_accuracy: Share of the held-out examples given their label; None with none.
        seconds: Training time.
        created_at: When it was written (UTC, ISO 8601).
    """

    capability: str
    field: str
    labels: list[str]
    examples_sha256: str
    embedder: str
    settings: dict[str, Any]
    held_out: dict[str, float]
    trained: int
    tested: int
    held_out_accuracy: float | None
    seconds: float
    created_at: str

    @classmethod
    def read(cls, folder: Path) -> ClassifierManifest:
        """The manifest in ``folder``.

        Raises:
            ClassifierError: No manifest, or one that is not a classifier's.
        """
        path = folder / MANIFEST
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ClassifierError(
                f"{folder}: no classifier here (no {MANIFEST}); `ragtune build` trains it."
            ) from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise ClassifierError(f"{path}: not a classifier manifest ({exc}).") from exc


@dataclass
class ClassifierPlan:
    """What the plan says about one capability's classifier.

    Attributes:
        capability: The capability.
        field: The field it decides.
        action: ``train`` (none yet), ``retrain`` (its examples, field, embedder or settings
            changed) or ``none``.
        reasons: Why, in words.
    """

    capability: str
    field: str
    action: Literal["train", "retrain", "none"]
    reasons: list[str] = default(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape (``ragtune plan --json``)."""
        return asdict(self)


def classifier_dir(project: Project, capability: str) -> Path:
    """``.ragtune/classifiers/<capability>``."""
    return project.state_dir / CLASSIFIERS / capability


def field_labels(schema: dict[str, Any], name: str, source: str) -> list[str]:
    """The ``enum`` of the top-level property ``name`` of a JSON Schema: the labels a classifier
    may give.

    Raises:
        ClassifierError: No such property, or it has no list of string values; ``source``
            names the contract file.
    """
    properties = schema.get("properties")
    spec = properties.get(name) if isinstance(properties, dict) else None
    if not isinstance(spec, dict):
        known = ", ".join(properties) if isinstance(properties, dict) else "none"
        raise ClassifierError(
            f"{source}: classify: {name!r} is not a property of the contract's JSON Schema "
            f"(properties: {known})."
        )
    values = spec.get("enum")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ClassifierError(
            f"{source}: classify: the property {name!r} needs an `enum` of strings (the labels "
            f"to choose from), got {values!r:.120}."
        )
    return list(values)


def labelled(
    examples: Sequence[Example], name: str, labels: Sequence[str], source: str
) -> list[tuple[str, str]]:
    """``(input, label)`` of each example: its output's value of the field ``name``.

    Raises:
        ClassifierError: An output that is not a JSON object, lacks the field, or gives a value
            outside ``labels``; the file (``source``) and line are named with the value.
    """
    known = set(labels)
    pairs = []
    for example in examples:
        where = f"{source}:{example.line}"
        try:
            output = json.loads(example.output)
        except json.JSONDecodeError:
            output = None
        if not isinstance(output, dict) or name not in output:
            raise ClassifierError(
                f"{where}: classify: the output has no {name!r} field to learn from "
                f"({example.output!r:.80})."
            )
        value = output[name]
        if value not in known:
            raise ClassifierError(
                f"{where}: classify: {name!r} is {value!r}, which is not in the contract's enum."
            )
        pairs.append((example.input, value))
    return pairs


def classifier_plan(project: Project, capability: Capability) -> ClassifierPlan:
    """Whether the capability's classifier must be (re)trained, from its manifest and the
    examples file's hash (no model is loaded)."""
    from ragtune.behavior.examples import load_examples

    assert capability.classify is not None and capability.examples is not None
    name = capability.classify.field
    folder = classifier_dir(project, capability.name)
    try:
        manifest = ClassifierManifest.read(folder)
    except ClassifierError:
        return ClassifierPlan(capability.name, name, "train", ["no classifier yet"])
    reasons = []
    examples = load_examples(project.resolve(capability.examples), project.root)
    if manifest.examples_sha256 != examples.sha256:
        reasons.append(f"{capability.examples} changed")
    if manifest.field != name:
        reasons.append(f"classify changed from {manifest.field!r} to {name!r}")
    if manifest.embedder != project.config.knowledge.embedder:
        reasons.append(f"the embedder changed to {project.config.knowledge.embedder!r}")
    if manifest.settings != capability.classify.tuning():
        reasons.append("the classifier's settings changed (classify: rounds, r, learning_rate...)")
    if manifest.held_out != _split_of(project, capability):
        reasons.append("the train/held-out split changed (train.held_out, train.seed)")
    return ClassifierPlan(capability.name, name, "retrain" if reasons else "none", reasons)


def _split_of(project: Project, capability: Capability) -> dict[str, float]:
    from ragtune.behavior.staleness import train_config_for

    config = train_config_for(project, capability)
    return {"share": float(config.held_out), "seed": float(config.seed)}


def train_classifier(
    project: Project,
    capability: Capability,
    *,
    progress: Progress | None = None,
) -> ClassifierManifest:
    """Tune the embedder on the capability's labelled examples, with its ``classify:``
    settings, and write the classifier whole.

    Raises:
        ClassifierError: The capability has no examples or JSON Schema contract, the field is
            not an enum of the contract, an example's label is bad, or the embedder is not a
            sentence-transformers model.
        ExamplesError: The examples file is bad, or too small to split.
    """
    import numpy as np

    from ragtune.behavior.checkpoint import swap_into_place
    from ragtune.behavior.contract import load_contract
    from ragtune.behavior.examples import load_examples, split

    settings = capability.classify
    if settings is None or not capability.examples or not capability.output_contract:
        raise ClassifierError(
            f"capability {capability.name!r}: classify needs `classify`, `examples` and a JSON "
            "Schema `output_contract`."
        )
    contract = load_contract(project.resolve(capability.output_contract), project.root)
    schema = getattr(contract, "schema", None)
    if not isinstance(schema, dict):
        raise ClassifierError(
            f"{capability.output_contract}: classify needs a JSON Schema contract (a .json "
            "file), not a regular expression."
        )
    labels = field_labels(schema, settings.field, capability.output_contract)
    examples = load_examples(project.resolve(capability.examples), project.root)
    # Every line is checked before any training, held-out ones included.
    pairs = labelled(examples.examples, settings.field, labels, capability.examples)
    label_of = {
        example.line: label for example, (_, label) in zip(examples.examples, pairs, strict=True)
    }
    split_of = _split_of(project, capability)
    train_side, held = (
        split(examples, held_out=split_of["share"], seed=int(split_of["seed"]))
        if split_of["share"] > 0
        else (list(examples.examples), [])  # train.held_out: 0 keeps nothing back
    )
    train_pairs = [(example.input, label_of[example.line]) for example in train_side]
    held_pairs = [(example.input, label_of[example.line]) for example in held]

    started = time.perf_counter()
    model = _tuned(project, train_pairs, settings, progress)
    texts = [text for text, _ in train_pairs]
    vectors = _encode(model, texts)
    given = [label for label in labels if any(lab == label for _, lab in train_pairs)]
    centroids = np.stack(
        [
            vectors[[i for i, (_, lab) in enumerate(train_pairs) if lab == label]].mean(0)
            for label in given
        ]
    )
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    accuracy = None
    if held_pairs:
        scores = _encode(model, [text for text, _ in held_pairs]) @ centroids.T
        right = [
            given[int(i)] == lab for i, (_, lab) in zip(scores.argmax(1), held_pairs, strict=True)
        ]
        accuracy = sum(right) / len(right)
    manifest = ClassifierManifest(
        capability=capability.name,
        field=settings.field,
        labels=given,
        examples_sha256=examples.sha256,
        embedder=project.config.knowledge.embedder,
        settings=settings.tuning(),
        held_out=split_of,
        trained=len(train_pairs),
        tested=len(held_pairs),
        held_out_accuracy=accuracy,
        seconds=round(time.perf_counter() - started, 1),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    target = classifier_dir(project, capability.name)
    stage = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        _inner(model).save_pretrained(str(stage / _LORA))
        np.save(stage / _CENTROIDS, centroids.astype(np.float32))
        (stage / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n", "utf-8")
        swap_into_place(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest


class Classifier:
    """A trained classifier, loaded for serving.

    Args:
        project: The project (its embedder is the base the LoRA was tuned on).
        capability: Whose classifier.

    Raises:
        ClassifierError: None trained, or trained on another embedder than the project's.
    """

    def __init__(self, project: Project, capability: str) -> None:
        import numpy as np

        folder = classifier_dir(project, capability)
        self.manifest = ClassifierManifest.read(folder)
        if self.manifest.embedder != project.config.knowledge.embedder:
            raise ClassifierError(
                f"{folder}: tuned on the embedder {self.manifest.embedder!r}, not the project's "
                f"{project.config.knowledge.embedder!r}; `ragtune build` trains it again."
            )
        from peft import PeftModel

        model = _base_model(project)
        tuned = PeftModel.from_pretrained(_inner(model), str(folder / _LORA))
        _set_inner(model, tuned.merge_and_unload())
        model.eval()
        self._model = model
        self._centroids = np.load(folder / _CENTROIDS)
        self.labels = list(self.manifest.labels)
        self._ranked = functools.lru_cache(maxsize=64)(self._rank)

    @property
    def field(self) -> str:
        """The field of the answer it decides."""
        return self.manifest.field

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every label with its cosine to the text, the closest first. The last texts' rankings
        are kept: a request is classified for its result and again for its guided decoding
        (and its repair), and embeds once."""
        return list(self._ranked(text))

    def _rank(self, text: str) -> tuple[tuple[str, float], ...]:
        scores = self._centroids @ _encode(self._model, [text])[0]
        ranked = sorted(zip(self.labels, map(float, scores), strict=True), key=lambda p: -p[1])
        return tuple(ranked)

    def choose(self, text: str) -> str:
        """The label closest to the text."""
        return self.rank(text)[0][0]


def _base_model(project: Project) -> Any:
    """A fresh copy of the project's sentence-transformers embedder (tuning it must not touch
    the one that embeds the knowledge)."""
    from ragtune.knowledge.embed import SentenceTransformerEmbedder, load_embedder

    spec = project.config.knowledge.embedder
    refused = ClassifierError(
        f"knowledge.embedder {spec!r}: classify tunes a sentence-transformers embedder "
        "(the default all-MiniLM-L6-v2, or st:FOLDER); this one cannot be tuned."
    )
    if spec.partition(":")[0] == "openai":
        raise refused  # an endpoint's model: nothing here to tune, and nothing to load
    embedder = load_embedder(spec)
    if not isinstance(embedder, SentenceTransformerEmbedder):
        raise refused
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedder.folder), device="cpu")


def _inner(model: Any) -> Any:
    """The transformers model inside a sentence-transformers one (``model``; sentence-transformers
    before 6 calls it ``auto_model``, which 6 keeps as a read-only alias)."""
    module = model[0]
    return module.model if hasattr(module, "model") else module.auto_model


def _set_inner(model: Any, inner: Any) -> None:
    module = model[0]
    if hasattr(module, "model"):
        module.model = inner
    else:
        module.auto_model = inner


def _encode(model: Any, texts: list[str]) -> NDArray[np.float32]:
    import numpy as np
    import torch

    with torch.no_grad():
        vectors = model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def _tuned(
    project: Project,
    pairs: list[tuple[str, str]],
    settings: ClassifySettings,
    progress: Progress | None,
) -> Any:
    """The embedder with a LoRA tuned so that texts of one label sit together."""
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model

    model = _base_model(project)
    torch.manual_seed(settings.seed)
    tuned = get_peft_model(
        _inner(model),
        LoraConfig(
            r=settings.r,
            lora_alpha=2 * settings.r,
            lora_dropout=0.0,
            target_modules=["query", "key", "value", "dense"],
        ),
    )
    _set_inner(model, tuned)
    draw = random.Random(settings.seed)
    by_label: dict[str, list[str]] = {}
    for text, label in pairs:
        by_label.setdefault(label, []).append(text)
    batch = [
        (text, draw.choice([other for other in by_label[label] if other != text]), label)
        for _ in range(settings.rounds)
        for text, label in pairs
        if len(by_label[label]) > 1
    ]
    draw.shuffle(batch)
    if not batch:
        raise ClassifierError("classify: no label has two training examples to pair; add examples.")
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )

    def embed(texts: list[str]) -> torch.Tensor:
        # sentence-transformers 6 renamed ``tokenize`` to ``preprocess``.
        features = getattr(model, "preprocess", None) or model.tokenize
        return F.normalize(model(dict(features(texts)))["sentence_embedding"], dim=-1)

    steps = range(0, len(batch), settings.batch)
    model.train()
    for step, start in enumerate(steps, 1):
        chunk = batch[start : start + settings.batch]
        labels = [label for _, _, label in chunk]
        scores = embed([a for a, _, _ in chunk]) @ embed([b for _, b, _ in chunk]).T
        # Another pair of the same label is not a negative.
        same = torch.tensor(
            [[a == b and i != j for j, b in enumerate(labels)] for i, a in enumerate(labels)]
        )
        logits = (scores * settings.scale).masked_fill(same, -1e4)
        loss = F.cross_entropy(logits, torch.arange(len(chunk)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress(step, len(steps), loss.item())
    model.eval()
    return model
