"""The llama.cpp backend: the base model's GGUF as shipped, adapters as GGUF LoRA, per request.

``llama-cpp-python`` loads the GGUF file itself - no de-quantisation, a fraction of a second,
about 200 MB for the default model - and decodes several times faster than transformers on a
CPU. Every adapter trained on that GGUF carries a GGUF LoRA beside its PEFT weights
(:mod:`ragtune.generate.gguf_lora`); the backend loads each once onto the one model
(``llama_adapter_lora_init``) and sets the one a request asks for on the context before it
decodes (``llama_set_adapters_lora``), so ten adapters cost one model plus ten small files.

- The prompt is the model's own chat template (from the GGUF) over the messages, tokenised with
  special tokens parsed: the control tokens of the vocabulary are broken inside every message
  first, so only the template writes roles (:func:`ragtune.context.defuse_tokens`).
- A JSON Schema is enforced by llama.cpp's grammar made from the whole schema
  (``LlamaGrammar.from_json_schema``): a guided answer is always JSON of the schema. A regex
  contract becomes a grammar the same way (:mod:`ragtune.generate.regex_grammar`).
- Decoding is greedy at temperature 0 and temperature sampling above it (with ``top_p`` and
  ``seed`` when given); stop strings are cut and held back while streaming exactly as in the
  transformers backend.

One lock serialises requests: the context (its KV cache and its adapter) is shared. A request
with another adapter than the last one starts from an empty cache, since cached keys and values
were computed with the other adapter.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.context import defuse_tokens
from ragtune.generate.backend import (
    BASE,
    DEFAULT_PARAMS,
    BackendError,
    Generation,
    GenerationParams,
    GuideError,
    Stream,
    check_messages,
    cut_at_stop,
    register_backend,
    release,
    trained_adapter,
)

if TYPE_CHECKING:
    from ragtune.project import Project

__all__ = ["LlamaCppBackend"]


@dataclass(frozen=True)
class _Adapter:
    """A GGUF LoRA loaded onto the model."""

    pointer: Any
    created_at: str | None


@dataclass(frozen=True)
class _Request:
    """A request turned into prompt tokens and decoding settings."""

    prompt: list[int]
    params: GenerationParams
    grammar: Any


class LlamaCppBackend:
    """Generate with llama.cpp from a GGUF base model and the adapters under ``adapters_root``.

    Args:
        gguf: The base model's GGUF file.
        adapters_root: The adapters folder, normally ``.ragtune/adapters``.
        model_sha256: The hash of the base model's files, as adapters record it.
        threads: CPU threads (default: the cores).
        context_tokens: The context window, prompt and answer together.

    Raises:
        BackendError: The file is not a GGUF model llama.cpp can load (names it).
    """

    def __init__(
        self,
        gguf: Path,
        adapters_root: Path,
        *,
        model_sha256: str,
        threads: int | None = None,
        context_tokens: int = 4096,
    ) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.gguf = Path(gguf)
        self.adapters_root = Path(adapters_root)
        self.model_sha256: str | None = model_sha256
        self.name = f"llama.cpp:{self.gguf.name}"
        self.is_remote = False
        if not self.gguf.is_file():
            raise BackendError(f"{self.gguf}: no such GGUF file (model.base_model).")
        threads = threads or os.cpu_count() or 1
        try:
            self._llm = Llama(
                model_path=str(self.gguf),
                n_ctx=context_tokens,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(f"{self.gguf}: llama.cpp cannot load it as a model: {exc}") from exc
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(f"{self.gguf}: the GGUF has no chat template to lay prompts out.")
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self._llm.token_eos()),
            bos_token=self._token_text(self._llm.token_bos()),
        )
        self._specials = self._control_tokens()
        self._lock = threading.Lock()
        self._adapters: dict[str, _Adapter] = {}
        self._active: str | None = None
        self._grammars: dict[str, Any] = {}

    # -- the Backend contract ------------------------------------------------------------------

    def generate(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Generation:
        """Answer the chat ``messages`` with the base model or one adapter.

        Raises:
            BackendError: A bad request, a prompt longer than the context, an unknown adapter
                or one of another base model, an adapter without a GGUF LoRA, or a schema
                llama.cpp's grammar cannot express.
        """
        return self.stream(messages, params).collect()

    def stream(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Stream:
        """Like :meth:`generate`, piece by piece; the request is checked here, at once."""
        request = self._prepare(messages, params)
        return Stream(self._pieces(request, time.perf_counter()))

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's tokenizer (no special tokens added)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def reload_adapter(self, name: str) -> str | None:
        """Load adapter ``name`` from disk again (after a retrain), without a restart.

        Returns:
            When the adapter now served was trained (its manifest's ``created_at``).
        """
        import llama_cpp

        folder, manifest = trained_adapter(self.adapters_root, name, self._sha, self.name)
        fresh = self._read(name, folder, manifest.gguf_lora, manifest.created_at or None)
        with self._lock:
            old = self._adapters.pop(name, None)
            if self._active == name:
                self._activate(None)
            if old is not None:
                llama_cpp.llama_adapter_lora_free(old.pointer)
            self._adapters[name] = fresh
        return fresh.created_at

    def loaded_adapters(self) -> list[str]:
        """Names of the adapters loaded so far, sorted."""
        return sorted(self._adapters)

    def close(self) -> None:
        """Free the adapters and the model; the backend cannot be used after."""
        import llama_cpp

        with self._lock:
            self._activate(None)
            for adapter in self._adapters.values():
                llama_cpp.llama_adapter_lora_free(adapter.pointer)
            self._adapters.clear()
            self._llm.close()

    # -- one request ---------------------------------------------------------------------------

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text: the GGUF's chat template over ``messages``, ending with the
        assistant's turn; control tokens written inside a message are broken first."""
        safe = [{**m, "content": defuse_tokens(m["content"], self._specials)} for m in messages]
        return str(self._formatter(messages=safe).prompt)  # type: ignore[arg-type]

    def _prepare(self, messages: list[dict[str, str]], params: GenerationParams) -> _Request:
        """Check the request, load its adapter, tokenise its prompt, build its grammar."""
        check_messages(messages)
        if params.adapter is not None and params.adapter not in self._adapters:
            self._load(params.adapter)
        prompt = self._llm.tokenize(
            self.render_prompt(messages).encode("utf-8"), add_bos=False, special=True
        )
        room = self._llm.n_ctx()
        if len(prompt) + params.max_tokens > room:
            raise BackendError(
                f"the prompt is {len(prompt)} tokens and max_tokens {params.max_tokens}: more "
                f"than the model's context of {room} tokens. Shorten the messages or ask for "
                "fewer tokens (model.context_tokens sets the context)."
            )
        grammar = None
        if params.schema is not None:
            grammar = self._grammar(params.schema)
        elif params.regex is not None:
            grammar = self._regex_grammar(params.regex)
        return _Request(prompt, params, grammar)

    def _pieces(self, request: _Request, started: float) -> Generator[str, None, Generation]:
        """Decode one request under the lock: pass its text on, return the Generation."""
        params = request.params
        ids: list[int] = []
        ended: list[bool] = []
        sent: list[str] = []
        with self._lock:
            self._activate(params.adapter)
            for piece in release(self._text(request, ids, ended), params.stop):
                sent.append(piece)
                yield piece
        whole = self._llm.detokenize(ids).decode("utf-8", errors="ignore")
        stopped = bool(ended) or cut_at_stop(whole, params.stop)[1]
        return Generation(
            text="".join(sent),
            prompt_tokens=len(request.prompt),
            completion_tokens=len(ids),
            finish_reason="stop" if stopped else "length",
            model=params.adapter or BASE,
            seconds=time.perf_counter() - started,
        )

    def _text(self, request: _Request, ids: list[int], ended: list[bool]) -> Iterator[str]:
        """The text of each decoded token, as it comes (a character split over tokens waits
        for its last byte); ``ids`` collects the tokens, ``ended`` notes an end of turn."""
        import llama_cpp

        params = request.params
        # The sampler is made inside generate() from the seed set now (the lock is held);
        # llama.cpp reads its default seed, 0xFFFFFFFF, as "draw a random one".
        if params.seed is None:
            self._llm.set_seed(llama_cpp.LLAMA_DEFAULT_SEED)
        else:
            self._llm.set_seed(params.seed % 0xFFFFFFFF)
            # A prompt read from the cache is re-read from its last token, whose logits differ
            # in the last bits from a whole read's: enough to change a draw. Read it whole.
            self._llm.reset()
        tokens = self._llm.generate(
            request.prompt,
            temp=float(params.temperature),
            top_k=0,
            top_p=float(params.top_p),
            min_p=0.0,
            repeat_penalty=1.0,
            grammar=request.grammar,
        )
        decoded = ""
        try:
            for token in tokens:
                ids.append(token)
                if llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token):
                    ended.append(True)
                    return
                text = self._llm.detokenize(ids).decode("utf-8", errors="ignore")
                yield text[len(decoded) :]
                decoded = text
                if len(ids) >= params.max_tokens:
                    return
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"generation with {self.name} failed: {exc}") from exc
        finally:
            tokens.close()

    # -- adapters and grammars -----------------------------------------------------------------

    @property
    def _sha(self) -> str:
        return self.model_sha256 or ""

    def _load(self, name: str) -> None:
        """Load an adapter on first use; the loaded set only grows under the lock."""
        folder, manifest = trained_adapter(self.adapters_root, name, self._sha, self.name)
        adapter = self._read(name, folder, manifest.gguf_lora, manifest.created_at or None)
        with self._lock:
            if self._adapters.setdefault(name, adapter) is not adapter:
                import llama_cpp  # another request loaded it first: this copy is not needed

                llama_cpp.llama_adapter_lora_free(adapter.pointer)

    def _read(self, name: str, folder: Path, sha256: str | None, created: str | None) -> _Adapter:
        """The GGUF LoRA of an adapter, loaded onto the model."""
        import llama_cpp

        from ragtune.generate.gguf_lora import GGUF_LORA

        path = folder / GGUF_LORA
        if sha256 is None or not path.is_file():
            raise BackendError(
                f"adapter {name!r} ({folder}) has no GGUF LoRA for the llama.cpp backend: "
                "retrain it (`ragtune adapter train`), convert it (`ragtune adapter import`), or "
                "serve it with model.backend: transformers."
            )
        pointer = llama_cpp.llama_adapter_lora_init(self._llm._model.model, str(path).encode())
        if not pointer:
            raise BackendError(f"adapter {name!r}: llama.cpp cannot load {path}.")
        return _Adapter(pointer, created)

    def _activate(self, name: str | None) -> None:
        """Put adapter ``name`` (None: none) on the context; the caller holds the lock. The
        cache was computed with the previous adapter, so it goes."""
        import ctypes

        import llama_cpp

        if name == self._active:
            return
        if name is None:
            llama_cpp.llama_set_adapters_lora(self._llm._ctx.ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[name].pointer)
            scales = (ctypes.c_float * 1)(1.0)
            if llama_cpp.llama_set_adapters_lora(self._llm._ctx.ctx, adapters, 1, scales):
                raise BackendError(f"llama.cpp cannot apply adapter {name!r}.")
        self._llm.reset()
        self._active = name

    def _grammar(self, schema: dict[str, Any]) -> Any:
        """llama.cpp's grammar for a JSON Schema, made once per schema."""
        from llama_cpp import LlamaGrammar

        # Not sort_keys: llama.cpp writes the properties in the order the schema lists them, and
        # an adapter learned that order (sorted, a flag's "rationale" came before its "risk").
        key = json.dumps(schema)
        if key not in self._grammars:
            from jsonschema import SchemaError  # type: ignore[import-untyped]
            from jsonschema.validators import validator_for  # type: ignore[import-untyped]

            try:
                validator_for(schema).check_schema(schema)
                self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
            except SchemaError as exc:
                raise GuideError(f"the JSON Schema is not valid: {exc.message}") from exc
            except (
                ValueError,
                RuntimeError,
                KeyError,
                TypeError,
                AttributeError,
                AssertionError,
            ) as exc:
                raise GuideError(
                    f"the JSON Schema cannot become a llama.cpp grammar ({exc}); simplify the "
                    "schema (llama.cpp supports types, enums, required properties, arrays and "
                    "$ref) or serve it with model.backend: transformers."
                ) from exc
        return self._grammars[key]

    def _regex_grammar(self, pattern: str) -> Any:
        """llama.cpp's grammar for a regex contract, made once per pattern."""
        from llama_cpp import LlamaGrammar

        from ragtune.generate.regex_grammar import RegexGrammarError, regex_to_gbnf

        key = "regex:" + pattern
        if key not in self._grammars:
            try:
                self._grammars[key] = LlamaGrammar.from_string(
                    regex_to_gbnf(pattern), verbose=False
                )
            except (RegexGrammarError, ValueError) as exc:
                raise GuideError(f"the regex cannot become a llama.cpp grammar: {exc}") from exc
        return self._grammars[key]

    # -- the vocabulary ------------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def _control_tokens(self) -> frozenset[str]:
        """The text of every control or user-defined token: what a chat template writes and a
        message must never."""
        import llama_cpp

        vocab = self._llm._model.vocab
        wanted = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        texts = set()
        for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
            if llama_cpp.llama_vocab_get_attr(vocab, token) & wanted:
                text = self._token_text(token)
                if len(text) >= 2:
                    texts.add(text)
        return frozenset(texts)


def _installed() -> bool:
    return find_spec("llama_cpp") is not None


@register_backend("llama.cpp", available=_installed)
def open_llamacpp(project: Project) -> LlamaCppBackend:
    """The llama.cpp backend for a project: ``model.base_model`` as a GGUF file, its adapters'
    GGUF LoRA files from ``.ragtune/adapters``.

    Raises:
        BackendError: The base model is not a GGUF (llama.cpp needs one).
    """
    from ragtune.generate.base import model_sha256, resolve_base_model

    settings = project.config.model
    spec = resolve_base_model(settings.base_model)
    if spec.gguf_path is None:
        raise BackendError(
            f"model.base_model {settings.base_model!r} is not a GGUF file, which the llama.cpp "
            "backend needs: give a .gguf, or set model.backend: transformers."
        )
    return LlamaCppBackend(
        spec.gguf_path,
        project.adapters_dir,
        model_sha256=model_sha256(spec),
        threads=settings.threads,
        context_tokens=settings.context_tokens,
    )
