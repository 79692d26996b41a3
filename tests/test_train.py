"""LoRA training: settings, completion-only labels, a short real run, repeatability, resume."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from ragtune.adapters import (
    AdapterError,
    TrainConfig,
    TrainError,
    checkpoint_path,
    list_adapters,
    load_manifest,
    remove_adapter,
    staging_path,
)
from ragtune.behavior.contract import load_contract
from ragtune.behavior.encode import IGNORE_INDEX, collate, encode_example, get_lr
from ragtune.behavior.examples import Example, ExampleSet, dataset_hash, load_examples
from ragtune.behavior.train import train_adapter
from ragtune.holdout import input_key

REPO = Path(__file__).resolve().parents[1]
RISK_FLAGS = REPO / "examples/contract-review/behavior/risk_flags.jsonl"
RISK_SCHEMA = REPO / "examples/contract-review/schemas/risk_flag.schema.json"

# Small enough for two CPU cores: about a second a step at batch 2 on these short clauses.
FAST = {"batch_size": 2, "max_length": 192, "eval_max_new_tokens": 0}


@pytest.fixture(scope="module")
def risk_flags() -> ExampleSet:
    """24 clauses spread over the file, so several categories are present."""
    full = load_examples(RISK_FLAGS)
    return ExampleSet(full.path, full.examples[::7][:24], full.sha256)


class Stop(Exception):
    """Raised from a progress callback to interrupt a run."""


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("r", 0),
        ("alpha", -1),
        ("dropout", 1.0),
        ("learning_rate", 0.0),
        ("epochs", 0),
        ("max_steps", 0),
        ("batch_size", 1.5),
        ("max_length", 8),
        ("held_out", 1.0),
        ("checkpoint_every", -1),
        ("target_modules", ()),
        ("seed", True),
        ("context_passages", -1),
        ("context_oracle_share", 1.5),
        ("context_chars", 10),
        ("context_order", "random"),
        ("context_counterfactual", 1.5),
        ("micro_batch_size", 0),
        ("gradient_checkpointing", "yes"),
        ("precision", "fp16"),
    ],
)
def test_bad_settings_name_the_field_and_value(field: str, value: object) -> None:
    with pytest.raises(TrainError, match=rf"TrainConfig\.{field}.*{value!r}"):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_held_out_zero_trains_on_everything_only_without_evaluation() -> None:
    with pytest.raises(TrainError, match=r"held_out is 0.*eval_max_new_tokens"):
        TrainConfig(held_out=0.0)
    assert TrainConfig(held_out=0.0, eval_max_new_tokens=0).held_out == 0.0
    with pytest.raises(TrainError, match=r"TrainConfig\.held_out.*-0\.1"):
        TrainConfig(held_out=-0.1, eval_max_new_tokens=0)


def test_defaults_are_documented_and_serialisable() -> None:
    config = TrainConfig()
    assert (config.r, config.alpha, config.batch_size, config.max_length) == (8, 16, 4, 384)
    assert config.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert all(TrainConfig.help().values())
    assert json.loads(json.dumps(config.to_dict()))["target_modules"][0] == "q_proj"


def test_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    config = TrainConfig(learning_rate=1e-3, warmup_steps=2)
    lrs = [get_lr(step, 10, config) for step in range(10)]
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs[2:]))
    assert lrs[-1] == pytest.approx(1e-4)


def test_collate_pads_right_and_ignores_padding() -> None:
    from ragtune.behavior.encode import EncodedExample

    batch = collate(
        [EncodedExample([1, 2, 3], [IGNORE_INDEX, 2, 3], False), EncodedExample([4], [4], False)],
        pad_id=0,
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]


# -- data -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_loss_is_on_the_completion_only(base_model, risk_flags: ExampleSet) -> None:  # type: ignore[no-untyped-def]
    tokenizer = base_model.tokenizer
    example = risk_flags.examples[0]
    encoded = encode_example(tokenizer, example, TrainConfig(system_prompt="Flag the risk."))
    kept = [t for t in encoded.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(kept) == example.output + tokenizer.eos_token  # <|im_end|>
    # The labelled tokens are the last ones, and the prompt before them is the runtime prompt.
    start = len(encoded.labels) - len(kept)
    assert encoded.input_ids[start:] == kept
    prompt = tokenizer.decode(encoded.input_ids[:start])
    assert "Flag the risk." in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert example.input in prompt and not encoded.truncated

    with_context = Example(input="Is this risky?", output="{}", context="Clause 7: <b>")
    text = tokenizer.decode(encode_example(tokenizer, with_context, TrainConfig()).input_ids)
    assert "<context>\nClause 7: <b>\n</context>" in text


@pytest.mark.slow
def test_truncation_keeps_the_answer(base_model) -> None:  # type: ignore[no-untyped-def]
    tokenizer = base_model.tokenizer
    long = Example(input="word " * 400, output='{"risk":"low"}')
    encoded = encode_example(tokenizer, long, TrainConfig(max_length=64))
    assert encoded.truncated and len(encoded.input_ids) == 64
    kept = [t for t in encoded.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(kept) == '{"risk":"low"}' + tokenizer.eos_token
    assert tokenizer.decode(encoded.input_ids[: len(encoded.input_ids) - len(kept)]).endswith(
        "<|im_start|>assistant\n"
    )


# -- a real run -------------------------------------------------------------------------------


@pytest.mark.slow
def test_short_run_learns_and_saves_a_safetensors_adapter(  # type: ignore[no-untyped-def]
    base_model, risk_flags: ExampleSet, tmp_path: Path
) -> None:
    seen: list[tuple[int, int, float]] = []
    config = TrainConfig(
        **{**FAST, "eval_max_new_tokens": 16}, max_steps=12, learning_rate=1e-3, seed=1
    )
    out = tmp_path / "adapters" / "risk_flags"
    result = train_adapter(
        base_model,
        risk_flags,
        out,
        config,
        load_contract(RISK_SCHEMA),
        progress=lambda step, total, loss: seen.append((step, total, loss)),
        knowledge_snapshot="snap-1",
    )
    assert [s for s, _, _ in seen] == list(range(1, 13)) and {t for _, t, _ in seen} == {12}
    losses = result.losses
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns

    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "ragtune.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    manifest = json.loads((out / "ragtune.json").read_text())
    assert manifest["base_model"]["sha256"] == base_model.sha256
    # PEFT's config names the model, not this machine's cache folder.
    peft_config = json.loads((out / "adapter_config.json").read_text())
    assert peft_config["base_model_name_or_path"] == base_model.spec.name
    assert manifest["dataset"]["sha256"] == dataset_hash(risk_flags)
    assert manifest["dataset"]["train"] + manifest["dataset"]["held_out"] == 24
    # What it trained on is recorded (the held-out examples are not), for the lab's seen/unseen.
    trained = set(manifest["dataset"]["inputs"])
    assert len(trained) == manifest["dataset"]["train"]
    assert trained < {input_key(e.input) for e in risk_flags.examples}
    assert manifest["knowledge_snapshot"] == "snap-1"
    assert manifest["config"] == config.to_dict()
    assert manifest["training"]["steps"] == 12
    for side in ("base", "adapter"):
        metrics = manifest["metrics"][side]
        assert metrics["examples"] == 2 and 0.0 <= metrics["compliance"] <= 1.0
        # A JSON Schema contract: the held-out answers are also scored guided by it.
        assert 0.0 <= metrics["guided_compliance"] <= 1.0
    # No checkpoint or staging folder is left, and the caller's model is plain again.
    assert not checkpoint_path(out).exists() and not staging_path(out).exists()
    assert not any("lora" in name for name, _ in base_model.model.named_modules())
    # The registry sees it.
    assert [a.name for a in list_adapters(tmp_path / "adapters")] == ["risk_flags"]
    assert load_manifest(tmp_path / "adapters", "risk_flags").to_dict() == manifest
    print(
        f"\n{result.seconds_per_step:.2f} s/step, peak RSS {result.peak_rss_mb:.0f} MiB, "
        f"adapter {result.size_bytes / 1e6:.1f} MB on disk, losses {[round(x, 2) for x in losses]}"
    )


@pytest.mark.slow
def test_same_seed_same_losses(base_model, risk_flags: ExampleSet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = TrainConfig(**FAST, max_steps=3, seed=7)
    first = train_adapter(base_model, risk_flags, tmp_path / "a", config)
    second = train_adapter(base_model, risk_flags, tmp_path / "b", config)
    assert first.losses == second.losses
    other = train_adapter(base_model, risk_flags, tmp_path / "c", TrainConfig(**FAST, max_steps=1))
    assert other.losses[0] != first.losses[0]


def test_a_second_run_of_the_same_adapter_is_refused_at_once(tmp_path: Path) -> None:
    """Two runs of one adapter would share its staging and checkpoint folders: while one holds
    the adapter's lock, another is refused before it loads or writes anything."""
    from ragtune.knowledge.store.lock import WriterLock

    out_dir = tmp_path / "adapters" / "risk_flags"
    out_dir.parent.mkdir(parents=True)
    running = WriterLock(out_dir.parent / ".risk_flags", "the adapter")
    with running.try_hold() as held:
        assert held
        with pytest.raises(TrainError, match="another run is training the adapter 'risk_flags'"):
            train_adapter(None, None, out_dir, TrainConfig())  # type: ignore[arg-type]
    assert not out_dir.exists() and not staging_path(out_dir).exists()


def test_micro_batches_fit_the_token_budget_and_never_exceed_the_batch() -> None:
    assert TrainConfig(batch_size=4, max_length=1024).micro_batch() == 2
    assert TrainConfig(batch_size=4, max_length=384).micro_batch() == 4
    assert TrainConfig(batch_size=4, max_length=4096).micro_batch() == 1
    assert TrainConfig(batch_size=2, micro_batch_size=8).micro_batch() == 2


def test_how_a_run_computes_never_makes_an_adapter_stale() -> None:
    result = TrainConfig.result_fields()
    assert {"micro_batch_size", "gradient_checkpointing", "precision"}.isdisjoint(result)
    assert {"checkpoint_every", "eval_max_new_tokens"}.isdisjoint(result)
    assert {"r", "learning_rate", "batch_size", "max_length", "target_modules"} <= result


@pytest.mark.slow
def test_micro_batches_and_checkpointing_take_the_same_steps(  # type: ignore[no-untyped-def]
    base_model, risk_flags: ExampleSet, tmp_path: Path
) -> None:
    """A batch of 4 in one pass, in four passes of one, and with gradient checkpointing: the
    same losses and the same adapter weights, to float rounding (dropout off: its masks depend
    on the shapes)."""
    from safetensors.numpy import load_file

    settings = {**FAST, "batch_size": 4, "max_steps": 2, "dropout": 0.0, "held_out": 0.0}
    runs = {
        "whole": TrainConfig(**settings, micro_batch_size=4),
        "micro": TrainConfig(**settings, micro_batch_size=1),
        "checkpointed": TrainConfig(**settings, micro_batch_size=2, gradient_checkpointing=True),
    }
    weights, losses = {}, {}
    for name, config in runs.items():
        result = train_adapter(base_model, risk_flags, tmp_path / name, config)
        losses[name] = result.losses
        weights[name] = load_file(str(result.path / "adapter_model.safetensors"))
    for name in ("micro", "checkpointed"):
        assert losses[name] == pytest.approx(losses["whole"], rel=1e-4), name
        for key, value in weights["whole"].items():
            # Adam moves a weight whose gradient is near zero by about the learning rate either
            # way, so float rounding may flip a few; the rest must match.
            off = abs(weights[name][key] - value) > 1e-6 + 1e-3 * abs(value)
            assert off.mean() < 0.01, (key, off.mean())
    assert any(abs(v).max() > 0 for k, v in weights["whole"].items() if "lora_B" in k)
    # The model was given back without checkpointing or the input-grad hook.
    assert not base_model.model.is_activation_checkpointing


@pytest.mark.slow
def test_interrupted_run_keeps_the_previous_adapter_and_resumes(  # type: ignore[no-untyped-def]
    base_model, risk_flags: ExampleSet, tmp_path: Path
) -> None:
    out = tmp_path / "risk_flags"
    train_adapter(base_model, risk_flags, out, TrainConfig(**FAST, max_steps=1))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    config = TrainConfig(**FAST, max_steps=4, checkpoint_every=2, learning_rate=1e-3)

    def stop_at_3(step: int, total: int, loss: float) -> None:
        interrupted.append(loss)
        if step == 3:
            raise Stop

    interrupted: list[float] = []
    with pytest.raises(Stop):
        train_adapter(base_model, risk_flags, out, config, progress=stop_at_3)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not staging_path(out).exists()
    assert json.loads((checkpoint_path(out) / "checkpoint.json").read_text())["step"] == 2
    assert not any("lora" in name for name, _ in base_model.model.named_modules())

    # A first run that is interrupted leaves no adapter folder at all.
    fresh = tmp_path / "fresh"
    with pytest.raises(Stop):
        train_adapter(base_model, risk_flags, fresh, config, progress=stop_at_3)
    assert not fresh.exists() and not staging_path(fresh).exists()

    # Resuming with other settings is refused; with the same ones it continues at step 3.
    with pytest.raises(TrainError, match="other settings"):
        train_adapter(base_model, risk_flags, out, TrainConfig(**FAST, max_steps=5), resume=True)
    resumed_steps: list[int] = []
    resumed = train_adapter(
        base_model,
        risk_flags,
        out,
        config,
        progress=lambda step, total, loss: resumed_steps.append(step),
        resume=True,
    )
    assert resumed_steps == [3, 4] and resumed.steps == 4
    assert json.loads((out / "ragtune.json").read_text())["training"]["steps"] == 4
    assert not checkpoint_path(out).exists()

    # And it lands where an uninterrupted run lands: same optimiser state, same dropout draws.
    straight = train_adapter(base_model, risk_flags, tmp_path / "straight", config)
    assert resumed.losses == pytest.approx(straight.losses[2:], rel=1e-5)
    assert interrupted[:2] == pytest.approx(straight.losses[:2], rel=1e-5)


@pytest.mark.slow
def test_resume_without_a_checkpoint_is_explained(  # type: ignore[no-untyped-def]
    base_model, risk_flags: ExampleSet, tmp_path: Path
) -> None:
    with pytest.raises(TrainError, match="nothing to resume"):
        train_adapter(base_model, risk_flags, tmp_path / "x", TrainConfig(**FAST), resume=True)
    with pytest.raises(TrainError, match="target_modules"):
        train_adapter(
            base_model, risk_flags, tmp_path / "x", TrainConfig(**FAST, target_modules=("nope",))
        )
    assert not any("lora" in name for name, _ in base_model.model.named_modules())


# -- the registry -----------------------------------------------------------------------------


def _fake_adapter(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "ragtune.json").write_text(json.dumps({"format": 1, "name": name}))
    (folder / "adapter_model.safetensors").write_bytes(b"x" * 10)
    return folder


def test_registry_lists_shows_and_removes(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    assert list_adapters(root) == []
    _fake_adapter(root, "risk_flags")
    _fake_adapter(root, "summaries")
    (root / ".risk_flags.checkpoint").mkdir()  # work in progress is not an adapter
    (root / "stray").mkdir()
    listed = list_adapters(root)
    assert [a.name for a in listed] == ["risk_flags", "summaries"]
    assert listed[0].size_bytes > 10
    assert load_manifest(root, "summaries").extra["name"] == "summaries"  # kept as read

    with pytest.raises(AdapterError, match=r"no adapter named 'risk_flag'.*'risk_flags'"):
        load_manifest(root, "risk_flag")
    with pytest.raises(AdapterError, match="cannot be a folder name"):
        remove_adapter(root, "../etc")

    assert remove_adapter(root, "risk_flags") == root / "risk_flags"
    assert not (root / ".risk_flags.checkpoint").exists()
    assert [a.name for a in list_adapters(root)] == ["summaries"]
    with pytest.raises(AdapterError, match="Adapters: summaries"):
        remove_adapter(root, "risk_flags")


def test_the_manifest_reads_back_as_written_and_old_ones_read_with_defaults(
    tmp_path: Path,
) -> None:
    from ragtune.adapters import (
        AdapterManifest,
        BaseModelRecord,
        ContextRecord,
        ScoreRecord,
        TrainingRecord,
    )

    made = AdapterManifest(
        base_model=BaseModelRecord("smol", "ab" * 32),
        config=TrainConfig().to_dict(),
        training=TrainingRecord(steps=7, tokens_per_second=140.5, processes=2),
        adapter_metrics=ScoreRecord(4, 0.5, 0.75, 1.0, ["{}"]),
        context=ContextRecord(["templates"], 3, 2, 0.8, 360, 5, [{"chunk_id": "c"}]),
        created_at="2026-11-28T12:00:00+00:00",
    )
    made.write(tmp_path)
    written = json.loads((tmp_path / "ragtune.json").read_text())
    assert list(written)[:4] == ["format", "ragtune_version", "created_at", "base_model"]
    assert written["context"]["from"] == ["templates"] and written["metrics"]["base"] is None
    assert AdapterManifest.read(tmp_path) == made

    # An older or hand-written manifest: what it lacks takes the defaults, the rest is kept.
    (tmp_path / "ragtune.json").write_text(
        json.dumps({"training": {"seconds_per_step": 2.0}, "time": "x"})
    )
    old = AdapterManifest.read(tmp_path)
    assert old.training.seconds_per_step == 2.0 and old.training.tokens_per_second is None
    assert old.base_model.sha256 == "" and old.context is None and old.extra == {"time": "x"}
    assert old.to_dict()["time"] == "x"


def test_a_broken_manifest_is_named(tmp_path: Path) -> None:
    folder = _fake_adapter(tmp_path, "bad")
    (folder / "ragtune.json").write_text("{not json")
    with pytest.raises(AdapterError, match=r"bad/ragtune\.json"):
        load_manifest(tmp_path, "bad")


def test_a_swap_interrupted_between_its_renames_is_recovered(tmp_path: Path) -> None:
    import json as _json

    from ragtune.adapters import list_adapters, recover_interrupted_swaps

    old = tmp_path / ".flags.old"
    old.mkdir()
    (old / "ragtune.json").write_text(_json.dumps({"base_model": {"sha256": "x"}}))
    assert recover_interrupted_swaps(tmp_path) == ["flags"]
    assert [a.name for a in list_adapters(tmp_path)] == ["flags"]
    assert not old.exists()
