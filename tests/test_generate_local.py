"""The local backend: greedy and bounded generation, stop strings, adapters switched per request,
hot reload, refusals, streaming, and the lock that keeps concurrent requests apart."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragtune.adapters import TrainConfig
from ragtune.behavior.examples import Example, ExampleSet, load_examples
from ragtune.behavior.train import train_adapter
from ragtune.generate.backend import (
    Backend,
    BackendError,
    Generation,
    GenerationParams,
    check_messages,
    cut_at_stop,
    partial_stop,
)

REPO = Path(__file__).resolve().parents[1]
RISK_FLAGS = REPO / "examples/contract-review/behavior/risk_flags.jsonl"

# A few steps at a high learning rate: enough to move greedy outputs away from the base model.
FAST = {"batch_size": 2, "max_length": 128, "eval_max_new_tokens": 0, "max_steps": 3}
ASK = [
    {
        "role": "user",
        "content": "Explain the risk in this contract clause: The Supplier may terminate this "
        "Agreement at any time without notice.",
    }
]
pytestmark = pytest.mark.usefixtures("one_thread")
N = 12  # new tokens per request: short, so the module runs in well under a minute


# -- pure helpers (no model) -------------------------------------------------------------------


def test_cut_at_stop_cuts_before_the_earliest_stop() -> None:
    assert cut_at_stop("a, b. c", [".", ","]) == ("a", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)
    assert cut_at_stop("abc", []) == ("abc", False)


def test_partial_stop_holds_back_what_could_begin_a_stop_string() -> None:
    assert partial_stop("hello <|en", ["<|end|>"]) == 4
    assert partial_stop("hello", ["<|end|>"]) == 0
    assert partial_stop("ab", ["abc", "bx"]) == 2
    assert partial_stop("a", []) == 0


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"max_tokens": 0}, "max_tokens must be a whole number >= 1, got 0"),
        ({"max_tokens": True}, "max_tokens must be a whole number >= 1, got True"),
        ({"temperature": -1.0}, "temperature must be a number from 0 to 2, got -1.0"),
        ({"temperature": float("nan")}, "temperature must be a number from 0 to 2, got nan"),
        ({"stop": "\n"}, r"stop must be a list of non-empty strings, got '\\n'"),
        ({"stop": [""]}, "stop must be a list of non-empty strings"),
        ({"adapter": ""}, "adapter must be a name or None"),
        ({"schema": "{}"}, "schema must be a JSON Schema object"),
    ],
)
def test_bad_settings_name_the_field_and_value(settings: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BackendError, match=match):
        GenerationParams(**settings)


def test_settings_are_one_frozen_value() -> None:
    params = GenerationParams(adapter="flags", stop=["\n"])
    assert params.stop == ("\n",) and params == GenerationParams(adapter="flags", stop=("\n",))
    with pytest.raises(AttributeError):
        params.max_tokens = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("messages", "match"),
    [([], "messages must be a non-empty list"), ([{"role": "user"}], r"messages\[0\] must be")],
)
def test_bad_messages_are_named(messages: list, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BackendError, match=match):
        check_messages(messages)


# -- fixtures: one model, three real adapters --------------------------------------------------


@pytest.fixture(scope="module")
def trained(base_model, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """``flags`` and ``terse`` (two behaviours), and ``flags`` retrained, under one folder."""
    full = load_examples(RISK_FLAGS)
    flags = ExampleSet(full.path, full.examples[::9][:12], full.sha256)
    terse = ExampleSet(
        "terse.jsonl", [Example(input=e.input, output="NO.") for e in flags.examples], "x"
    )
    root = tmp_path_factory.mktemp("trained")
    train_adapter(
        base_model, flags, root / "flags", TrainConfig(**FAST, learning_rate=1e-2, seed=1)
    )
    train_adapter(
        base_model, terse, root / "terse", TrainConfig(**FAST, learning_rate=1e-2, seed=2)
    )
    train_adapter(
        base_model,
        flags,
        root / "retrained" / "flags",
        TrainConfig(**FAST, learning_rate=3e-2, seed=5),
    )
    return root


@pytest.fixture
def backend(base_model, trained: Path, tmp_path: Path) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    """A backend over a fresh copy of the adapters; its LoRA layers are removed afterwards."""
    from ragtune.generate.local import LocalBackend

    root = tmp_path / "adapters"
    for name in ("flags", "terse"):
        shutil.copytree(trained / name, root / name)
    local = LocalBackend(base_model, root)
    yield local
    local.close()
    assert not any("lora" in name for name, _ in base_model.model.named_modules())


# -- the base model ----------------------------------------------------------------------------


@pytest.mark.slow
def test_greedy_is_deterministic_and_bounded(backend) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(backend, Backend)
    first = backend.generate(ASK, GenerationParams(max_tokens=N))
    second = backend.generate(ASK, GenerationParams(max_tokens=N))
    assert isinstance(first, Generation) and first.text == second.text and first.text
    assert first.finish_reason == "length" and first.completion_tokens == N
    assert first.model == "base" and first.seconds > 0
    prompt = backend.loaded.tokenizer.apply_chat_template(
        ASK, add_generation_prompt=True, tokenize=False
    )
    assert first.prompt_tokens == backend.count_tokens(prompt)
    # Above temperature 0 it samples: still bounded, still an answer.
    sampled = backend.generate(ASK, GenerationParams(max_tokens=N, temperature=0.9))
    assert sampled.text and sampled.completion_tokens <= N
    # A model that ends its turn early says "stop".
    short = backend.generate(
        [{"role": "user", "content": "Say just: yes"}], GenerationParams(max_tokens=40)
    )
    assert short.finish_reason == "stop" and short.completion_tokens < 40


@pytest.mark.slow
def test_stop_strings_cut_the_text(backend) -> None:  # type: ignore[no-untyped-def]
    full = backend.generate(ASK, GenerationParams(max_tokens=N)).text
    stop = full[8:11]  # some characters from the middle of the greedy answer
    cut = backend.generate(ASK, GenerationParams(max_tokens=N, stop=["never-produced", stop]))
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop" and cut.completion_tokens < N
    # Streaming the same request passes on exactly the same text, stop string withheld.
    stream = backend.stream(ASK, GenerationParams(max_tokens=N, stop=["never-produced", stop]))
    assert "".join(stream) == cut.text
    assert stream.result is not None and stream.result.finish_reason == "stop"


# -- adapters ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_adapters_switch_per_request_and_base_stays_base(backend) -> None:  # type: ignore[no-untyped-def]
    base_before = backend.generate(ASK, GenerationParams(max_tokens=N)).text
    assert backend.loaded_adapters() == []  # nothing is loaded until asked for
    flags = backend.generate(ASK, GenerationParams(adapter="flags", max_tokens=N))
    terse = backend.generate(ASK, GenerationParams(adapter="terse", max_tokens=N))
    assert backend.loaded_adapters() == ["flags", "terse"]
    assert (flags.model, terse.model) == ("flags", "terse")
    assert len({base_before, flags.text, terse.text}) == 3, (base_before, flags.text, terse.text)
    # Back and forth: each adapter answers as before, and the base model is the base model.
    assert backend.generate(ASK, GenerationParams(adapter="flags", max_tokens=N)).text == flags.text
    assert backend.generate(ASK, GenerationParams(max_tokens=N)).text == base_before
    assert backend.generate(ASK, GenerationParams(adapter="terse", max_tokens=N)).text == terse.text


@pytest.mark.slow
def test_reload_picks_up_a_retrained_adapter(backend, trained: Path) -> None:  # type: ignore[no-untyped-def]
    base_text = backend.generate(ASK, GenerationParams(max_tokens=N)).text
    old = backend.generate(ASK, GenerationParams(adapter="flags", max_tokens=N)).text
    # The retrain lands in the folder (as `ragtune build` swaps a new run into place).
    folder = backend.adapters_root / "flags"
    shutil.rmtree(folder)
    shutil.copytree(trained / "retrained" / "flags", folder)
    assert (
        backend.generate(ASK, GenerationParams(adapter="flags", max_tokens=N)).text == old
    )  # until reloaded
    created = backend.reload_adapter("flags")  # the only adapter loaded: PEFT is left with none
    assert created == json.loads((folder / "ragtune.json").read_text())["created_at"]
    new = backend.generate(ASK, GenerationParams(adapter="flags", max_tokens=N)).text
    assert new != old
    assert backend.generate(ASK, GenerationParams(max_tokens=N)).text == base_text
    # Reloading beside another adapter, and reloading one never loaded, work too.
    backend.generate(ASK, GenerationParams(adapter="terse", max_tokens=N))
    backend.reload_adapter("flags")
    assert backend.generate(ASK, GenerationParams(adapter="flags", max_tokens=N)).text == new
    backend.close()
    assert backend.reload_adapter("terse") is not None
    assert backend.loaded_adapters() == ["terse"]


@pytest.mark.slow
def test_foreign_and_unknown_adapters_are_refused(backend) -> None:  # type: ignore[no-untyped-def]
    root = backend.adapters_root
    shutil.copytree(root / "flags", root / "foreign")
    manifest = json.loads((root / "foreign" / "ragtune.json").read_text())
    manifest["base_model"]["sha256"] = "0" * 64
    (root / "foreign" / "ragtune.json").write_text(json.dumps(manifest))

    message = (
        rf"adapter 'foreign' .*trained on another base model.*{'0' * 64}.*{backend.loaded.sha256}"
    )
    with pytest.raises(BackendError, match=message):
        backend.generate(ASK, GenerationParams(adapter="foreign", max_tokens=2))
    with pytest.raises(BackendError, match=message):
        backend.stream(ASK, GenerationParams(adapter="foreign", max_tokens=2))
    with pytest.raises(BackendError, match="another base model"):
        backend.reload_adapter("foreign")
    with pytest.raises(BackendError, match=r"no adapter named 'flag'.*'flags'.*Adapters: "):
        backend.generate(ASK, GenerationParams(adapter="flag", max_tokens=2))
    with pytest.raises(BackendError, match="cannot be a folder name"):
        backend.generate(ASK, GenerationParams(adapter="../flags", max_tokens=2))
    assert backend.loaded_adapters() == []


# -- streaming and concurrency -----------------------------------------------------------------


@pytest.mark.slow
def test_stream_pieces_join_to_the_greedy_text(backend) -> None:  # type: ignore[no-untyped-def]
    for adapter in (None, "flags"):
        whole = backend.generate(ASK, GenerationParams(adapter=adapter, max_tokens=N))
        stream = backend.stream(ASK, GenerationParams(adapter=adapter, max_tokens=N))
        pieces = list(stream)
        assert len(pieces) > 1 and "".join(pieces) == whole.text
        result = stream.result
        assert result is not None and result.text == whole.text
        assert (result.completion_tokens, result.finish_reason, result.model) == (
            whole.completion_tokens,
            whole.finish_reason,
            whole.model,
        )


@pytest.mark.slow
def test_a_closed_stream_stops_and_frees_the_model(backend) -> None:  # type: ignore[no-untyped-def]
    stream = backend.stream(ASK, GenerationParams(max_tokens=200))
    next(stream)
    stream.close()  # would otherwise hold the model for 200 tokens
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (backend.generate(ASK, GenerationParams(max_tokens=2)), done.set()),
        daemon=True,
    )
    worker.start()
    assert done.wait(timeout=30), "the closed stream kept the lock"


@pytest.mark.slow
def test_concurrent_requests_get_their_own_adapter(backend) -> None:  # type: ignore[no-untyped-def]
    expected = {
        a: backend.generate(ASK, GenerationParams(adapter=a, max_tokens=N)).text
        for a in ("flags", "terse")
    }
    expected[None] = backend.generate(ASK, GenerationParams(max_tokens=N)).text  # type: ignore[index]
    got: dict[str | None, list[str]] = {a: [] for a in expected}

    def ask(adapter: str | None) -> None:
        got[adapter].append(
            backend.generate(ASK, GenerationParams(adapter=adapter, max_tokens=N)).text
        )
        got[adapter].append(
            "".join(backend.stream(ASK, GenerationParams(adapter=adapter, max_tokens=N)))
        )

    threads = [threading.Thread(target=ask, args=(a,)) for a in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == {a: [text, text] for a, text in expected.items()}
