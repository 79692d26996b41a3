"""The local backend: the base model on this machine, with LoRA adapters switched per request.

One base model is loaded once; every adapter is a small set of LoRA weights beside it. PEFT keeps
several adapters on the same model and activates one at a time, so serving ten capabilities
costs one model plus ten times a few megabytes:

- the first adapter wraps the model: ``PeftModel.from_pretrained(model, folder, adapter_name=)``;
  later ones are added with ``load_adapter(folder, adapter_name=)``. Each loads on first use.
- a request for an adapter calls ``set_adapter(name)``; a request for the base model runs
  inside ``with peft_model.disable_adapter():``, which bypasses every LoRA layer.
- :meth:`LocalBackend.reload_adapter` drops an adapter (``delete_adapter``) and loads it again
  from disk, so a retrained adapter is served without a restart.

Switching adapters changes the model for everyone using it, so one lock serialises generations:
a request (a whole stream included) has the model to itself. On two CPU cores requests would
compete for the same cores anyway.

An adapter is refused unless its manifest says it was trained on this very base model (the
``base_model.sha256`` of its ``ragtune.json``): LoRA weights learned on one model are noise on
another, and nothing else would notice.

Once an adapter is loaded, PEFT has put LoRA layers into ``loaded.model`` itself: do not train
on the same :class:`~ragtune.generate.base.LoadedModel` while a backend serves it: call
:meth:`LocalBackend.close` first, or load a second one (from the cache, a second or two).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.adapters import AdapterManifest
from ragtune.context import defuse_tokens
from ragtune.generate.backend import (
    BASE,
    DEFAULT_PARAMS,
    BackendError,
    FinishReason,
    Generation,
    GenerationParams,
    Stream,
    check_messages,
    cut_at_stop,
    register_backend,
    release,
    trained_adapter,
)

if TYPE_CHECKING:
    from ragtune.generate.base import LoadedModel
    from ragtune.generate.guide import Grammar
    from ragtune.project import Project

__all__ = ["LoadedAdapter", "LocalBackend"]


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter as the backend loaded it.

    Attributes:
        name: The adapter's name (its folder under the adapters root).
        path: The folder it was read from.
        created_at: When it was trained (``created_at`` of its manifest), None if not recorded.
        manifest: Its ``ragtune.json`` as read when it was loaded.
    """

    name: str
    path: Path
    created_at: str | None
    manifest: AdapterManifest


@dataclass(frozen=True)
class _Prepared:
    """A request turned into model inputs and generate() arguments."""

    inputs: dict[str, Any]
    prompt_tokens: int
    kwargs: dict[str, Any]
    stop: list[str]
    max_tokens: int
    model_name: str
    seed: int | None = None


class LocalBackend:
    """Generate with a loaded base model and the trained adapters under ``adapters_root``.

    Args:
        loaded: The base model (:func:`ragtune.generate.base.load_base_model`).
        adapters_root: The adapters folder, normally ``.ragtune/adapters``; adapters are read
            from ``<adapters_root>/<name>/`` when first asked for.
    """

    def __init__(self, loaded: LoadedModel, adapters_root: Path) -> None:
        self.loaded = loaded
        self.adapters_root = Path(adapters_root)
        self.name = f"transformers:{loaded.spec.name}"
        self.is_remote = False
        self.model_sha256: str | None = loaded.sha256
        self._lock = threading.Lock()
        self._peft: Any = None  # the PeftModel, once the first adapter is loaded
        self._adapters: dict[str, LoadedAdapter] = {}
        eos = loaded.model.generation_config.eos_token_id
        if eos is None:
            eos = loaded.tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos])
        self._specials = special_tokens(loaded.tokenizer)
        self._grammars: dict[str, Grammar] = {}  # compiled contracts, by their text

    # -- the Backend interface -----------------------------------------------------------------

    def generate(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Generation:
        """Answer the chat ``messages`` with the base model or one adapter.

        Args:
            messages: ``{"role": ..., "content": ...}`` dicts; the model's chat template lays
                them out, ending with the assistant's turn.
            params: The adapter (one under ``adapters_root``, or None for the base model), the
                token budget, temperature (0 greedy) and stop strings. A ``schema`` or
                ``regex`` guides the decoding: only tokens that keep the answer inside the
                contract are let through (:mod:`ragtune.generate.guide`, llguidance), so the
                answer is the schema's JSON or matches the regex unless ``max_tokens`` runs out.

        Raises:
            BackendError: A bad argument; an unknown adapter (lists the known ones); an adapter
                trained on another base model (names both hashes); PEFT cannot load it; a
                schema or regex llguidance cannot compile (names what failed).
        """
        started = time.perf_counter()
        request = self._prepare(messages, params)
        with self._lock, self._using(params.adapter) as model:
            _seed(request.seed)
            output = model.generate(**request.inputs, **request.kwargs)
        text, completion_tokens, finish = self._finish(output, request)
        return Generation(
            text=text,
            prompt_tokens=request.prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
            model=request.model_name,
            seconds=time.perf_counter() - started,
        )

    def stream(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Stream:
        """Like :meth:`generate`, yielding text pieces as the model produces them.

        The request is checked here (a bad argument or adapter raises at once); the model is
        taken when the first piece is asked for and held until the last one is read or the
        stream is closed. Generation runs in a thread feeding a ``TextIteratorStreamer``;
        characters that could begin a stop string are held back until it is clear they do not.
        """
        request = self._prepare(messages, params)
        return Stream(self._pieces(request, params.adapter, time.perf_counter()))

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text the model reads: the chat template over ``messages``, ending with the
        assistant's turn, to be tokenised as it is (the template wrote every special token).

        The rendered text is tokenised whole, so a special token written inside a message would
        become a real one (a forged turn, a forged end of the system prompt): every special
        token of the tokenizer inside a message is broken first; only the template writes them.
        """
        messages = [{**m, "content": defuse_tokens(m["content"], self._specials)} for m in messages]
        prompt = self.loaded.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return str(prompt)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the base model's tokenizer (no special tokens added)."""
        return len(self.loaded.tokenizer.encode(text, add_special_tokens=False))

    # -- adapters ------------------------------------------------------------------------------

    def loaded_adapters(self) -> list[str]:
        """Names of the adapters loaded so far, sorted."""
        return sorted(self._adapters)

    def reload_adapter(self, name: str) -> str | None:
        """Read adapter ``name`` from disk again (after a retrain), without a restart.

        Waits for the request in progress, then serves the new weights to every request after
        it. An adapter not loaded yet is simply loaded. When the new manifest is refused (another
        base model), the loaded version stays in service.

        Returns:
            When the adapter now served was trained (its manifest's ``created_at``).

        Raises:
            BackendError: Unknown adapter, trained on another base model, or PEFT cannot load it.
        """
        folder, manifest = self._check_adapter(name)
        with self._lock:
            if name in self._adapters:
                self._peft.delete_adapter(name)
                del self._adapters[name]
            return self._load(name, folder, manifest).created_at

    def close(self) -> None:
        """Unload every adapter and give the base model back as it came (no LoRA layers).

        Waits for the request in progress. The backend stays usable: adapters load again on
        their next use. Call it before training on the same loaded model.
        """
        with self._lock:
            if self._peft is not None:
                self._peft.unload()
                self._peft = None
            self._adapters.clear()
            self.loaded.model.eval()

    def _check_adapter(self, name: str) -> tuple[Path, AdapterManifest]:
        """The adapter's folder and manifest, when it exists and was trained on this base."""
        return trained_adapter(self.adapters_root, name, self.loaded.sha256, self.loaded.spec.name)

    def _load(self, name: str, folder: Path, manifest: AdapterManifest) -> LoadedAdapter:
        """Put the adapter's LoRA weights on the model; the caller holds the lock."""
        from peft import PeftModel

        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self.loaded.model, str(folder), adapter_name=name, is_trainable=False
                )
            else:
                self._peft.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise BackendError(f"adapter {name!r}: PEFT cannot load {folder}: {exc}") from exc
        self._peft.eval()
        info = LoadedAdapter(name, folder, manifest.created_at or None, manifest)
        self._adapters[name] = info
        return info

    @contextmanager
    def _using(self, adapter: str | None) -> Iterator[Any]:
        """The model set up for one request; the caller holds the lock."""
        if adapter is None:
            if not self._adapters:  # no LoRA weights anywhere (or none left): the plain model
                yield self.loaded.model
            else:
                with self._peft.disable_adapter():
                    yield self._peft
            return
        if adapter not in self._adapters:
            self._load(adapter, *self._check_adapter(adapter))
        self._peft.set_adapter(adapter, inference_mode=True)
        yield self._peft

    # -- one request ---------------------------------------------------------------------------

    def _prepare(self, messages: list[dict[str, str]], params: GenerationParams) -> _Prepared:
        """Check the request and tokenise its prompt; an unknown adapter fails here."""
        check_messages(messages)
        adapter, max_tokens, temperature = params.adapter, params.max_tokens, params.temperature
        stops = list(params.stop)
        if adapter is not None and adapter not in self._adapters:
            self._check_adapter(adapter)
        tokenizer = self.loaded.tokenizer
        inputs = tokenizer(
            self.render_prompt(messages), return_tensors="pt", add_special_tokens=False
        )
        inputs = {k: v.to(self.loaded.model.device) for k, v in inputs.items()}
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(params.top_p))
        else:
            kwargs.update(do_sample=False)
        if stops:
            # transformers stops on the strings itself (StopStringCriteria); it needs the
            # tokenizer to see which tokens can spell them.
            kwargs.update(stop_strings=stops, tokenizer=tokenizer)
        grammar = self._grammar(params)
        if grammar is not None:
            from ragtune.generate.guide import guided_kwargs

            guided, _ = guided_kwargs(grammar, int(inputs["input_ids"].shape[1]))
            kwargs.update(guided)
        return _Prepared(
            inputs=inputs,
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            kwargs=kwargs,
            stop=stops,
            max_tokens=max_tokens,
            model_name=adapter or BASE,
            seed=params.seed if temperature > 0 else None,
        )

    def _grammar(self, params: GenerationParams) -> Grammar | None:
        """The request's contract compiled by llguidance (once per contract), or None."""
        if params.schema is not None:
            key = "schema:" + json.dumps(params.schema)  # the order of properties matters
        elif params.regex is not None:
            key = "regex:" + params.regex
        else:
            return None
        if key not in self._grammars:
            from ragtune.generate.guide import regex_grammar, schema_grammar

            tokenizer = self.loaded.tokenizer
            self._grammars[key] = (
                schema_grammar(tokenizer, params.schema, self._eos_ids)
                if params.schema is not None
                else regex_grammar(tokenizer, str(params.regex), self._eos_ids)
            )
        return self._grammars[key]

    def _finish(self, output: Any, request: _Prepared) -> tuple[str, int, FinishReason]:
        """Text, completion tokens and finish reason of generate()'s output."""
        new_ids = output[0, request.prompt_tokens :].tolist()
        text = self.loaded.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, request.stop)
        ended = bool(new_ids) and new_ids[-1] in self._eos_ids
        finish: FinishReason = (
            "stop" if stopped or ended or len(new_ids) < request.max_tokens else "length"
        )
        return text, len(new_ids), finish

    def _pieces(
        self, request: _Prepared, adapter: str | None, started: float
    ) -> Generator[str, None, Generation]:
        """Stream one request: generate in a thread, pass its text on, return the Generation."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        streamer = TextIteratorStreamer(
            self.loaded.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        cancel = threading.Event()
        outcome: dict[str, Any] = {}

        with self._lock, self._using(adapter) as model:

            def run() -> None:
                try:
                    _seed(request.seed)
                    outcome["output"] = model.generate(
                        **request.inputs,
                        **request.kwargs,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_cancelled(cancel)]),
                    )
                except BaseException as exc:  # handed to the reader below
                    outcome["error"] = exc
                    streamer.end()  # wake the reader

            thread = threading.Thread(target=run, name="ragtune-generate", daemon=True)
            thread.start()
            sent: list[str] = []
            try:
                # At a stop string reading ends; generate() stops on the same string by itself.
                for piece in release(iter(streamer), request.stop):
                    sent.append(piece)
                    yield piece
            finally:
                # The reader is done (or closed the stream early): stop generating, then let the
                # thread finish before the lock and the adapter are given up.
                cancel.set()
                thread.join()
        if "error" in outcome:
            error = outcome["error"]
            raise BackendError(f"generation with {request.model_name} failed: {error}") from error
        _, completion_tokens, finish = self._finish(outcome["output"], request)
        return Generation(
            text="".join(sent),
            prompt_tokens=request.prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
            model=request.model_name,
            seconds=time.perf_counter() - started,
        )


def _seed(seed: int | None) -> None:
    """Seed torch's generator for a sampled request that gave a seed; the caller holds the lock
    (the generator is the process's)."""
    if seed is not None:
        import torch

        torch.manual_seed(seed % 2**64)


def _cancelled(event: threading.Event) -> Any:
    """A stopping criterion that ends generation once ``event`` is set (a stream was closed)."""
    import torch
    from transformers import StoppingCriteria

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device
            )

    return Cancelled()


def special_tokens(tokenizer: Any) -> frozenset[str]:
    """Every token the tokenizer treats as special: its named ones and the added ones marked
    special (the chat template's role markers among them)."""
    tokens = set(tokenizer.all_special_tokens)
    for added in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(added, "special", False):
            tokens.add(str(added.content))
    return frozenset(tokens)


@register_backend("transformers", available=lambda: find_spec("torch") is not None)
def open_transformers(project: Project) -> LocalBackend:
    """The transformers backend for a project: its base model (de-quantised once into
    ``.ragtune/models``) on ``model.device``, its adapters from ``.ragtune/adapters``."""
    from ragtune.generate.base import load_base_model

    settings = project.config.model
    loaded = load_base_model(
        settings.base_model, cache_root=project.state_dir / "models", device=settings.device
    )
    return LocalBackend(loaded, project.adapters_dir)
