"""What one request through the runtime carries, and what every request shares.

:class:`Request`, :class:`Route` and :class:`Result` are the dataclasses the steps of
:mod:`ragtune.runtime.pipeline` pass along; :class:`Runtime` holds what the steps share - the
project, its knowledge base, contracts, examples and the generation backend, each loaded on
first use. The steps read it and change nothing in it, so one runtime serves many requests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragtune.behavior.contract import OutputContract, load_contract
from ragtune.behavior.examples import Example, load_examples
from ragtune.behavior.fewshot import DEFAULT_K
from ragtune.context import Passage, text_sha1
from ragtune.errors import RagtuneError, closest
from ragtune.generate.backend import Backend
from ragtune.project import Capability, Project

if TYPE_CHECKING:
    from ragtune.behavior.classify import Classifier
    from ragtune.generate.backend import BackendFactory
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.knowledge.embed import Embedder
    from ragtune.knowledge.tools import Tool

_log = logging.getLogger(__name__)

__all__ = ["PASSAGE_CHARS", "PipelineError", "Request", "Result", "Route", "Runtime", "Strategy"]

Strategy = Literal["retrieval", "quote", "few-shot", "lora", "prompt"]

PASSAGE_CHARS = 1200
"""Each passage is clipped to this many characters in the prompt."""


class PipelineError(RagtuneError):
    """A request cannot be served: an unknown capability, an empty question, nothing to route."""


@dataclass(frozen=True)
class Request:
    """One request to the runtime.

    Attributes:
        question: The user's request (for the API: the last user message).
        capability: The capability to serve it (``model`` in the API), or None to route.
        history: Earlier chat turns (OpenAI messages) kept before the request, system
            messages excluded.
        max_tokens: Token budget of the answer.
        temperature: 0 for greedy decoding.
        instructions: The client's own instructions (an API request's system and developer
            messages), placed after the capability's rules, which they cannot change
            (:func:`ragtune.prompt.with_client_instructions`); empty: none.
        contract: The output contract the client asks for (an API request's
            ``response_format`` or forced function call); it replaces the capability's own
            contract for this request: it guides the decoding, and the answer is validated
            and repaired against it. None: the capability's contract, if it has one.
        stop: Strings that end the answer (the text is cut before the first one).
        top_p: Nucleus sampling when sampling (1.0: all tokens).
        seed: Seeds the sampling, for an answer that repeats; None draws afresh.
    """

    question: str
    capability: str | None = None
    history: tuple[dict[str, str], ...] = ()
    max_tokens: int = 256
    temperature: float = 0.0
    instructions: str = ""
    contract: OutputContract | None = None
    stop: tuple[str, ...] = ()
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Route:
    """Where a request goes and what serves it.

    Attributes:
        capability: The capability the request was routed to.
        strategy: ``retrieval``, ``quote`` (a knowledge capability answered with a quote of
            its passages, :mod:`ragtune.runtime.quote`), ``few-shot``, ``lora`` or ``prompt`` (a
            behaviour served by its instructions alone, for instance a lora capability whose
            adapter is not trained yet).
        knowledge: Knowledge capabilities searched for context (empty: none).
        adapter: The adapter applied, or None for the base model.
        how: ``named`` when the request named the capability, ``routed`` when the router chose.
        score: The router's similarity for a routed request.
    """

    capability: str
    strategy: Strategy
    knowledge: tuple[str, ...] = ()
    adapter: str | None = None
    how: Literal["named", "routed"] = "named"
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a route."""
        return {
            "capability": self.capability,
            "strategy": self.strategy,
            "knowledge": list(self.knowledge),
            "adapter": self.adapter,
            "how": self.how,
            "score": None if self.score is None else round(self.score, 4),
        }


@dataclass
class Result:
    """The answer to one request, with everything needed to trust or debug it.

    Attributes:
        text: The answer.
        route: Where the request went.
        passages: The retrieved passages, numbered from 1 as in the prompt.
        cited: Numbers of the passages the answer cites (``[n]``).
        contract_ok: Whether the answer honours the capability's contract; None without one.
        contract_violation: True when it does not, even after the repair attempt.
        contract_errors: What is wrong with it, when something is.
        repaired: Whether the answer comes from the repair attempt.
        prompt_tokens: Prompt tokens over every generation of the request.
        completion_tokens: Generated tokens over every generation of the request.
        finish_reason: ``stop`` or ``length`` of the last generation.
        model: What generated the answer (``base``, an adapter, a remote model).
        timings: Seconds spent in each step, by step name, and ``total``.
        shots: The few-shot examples placed in the prompt.
        messages: The chat messages sent to the model (the first attempt).
        classified: The fields the capability's label classifier chose (``classify:``) and the
            answer carries, field to label (the decoding was guided to write them).
        supported: Whether a reader's answer is supported by its passages
            (:mod:`ragtune.runtime.support`); None when no reader wrote it.
        unsupported: What the reader wrote when its passages did not support it: the answer
            is then the quote of the closest clause (a streamed answer is only flagged).
    """

    text: str
    route: Route
    passages: list[Passage] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    contract_ok: bool | None = None
    contract_violation: bool = False
    contract_errors: list[str] = field(default_factory=list)
    repaired: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    model: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    shots: list[Example] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    classified: dict[str, str] = field(default_factory=dict)
    supported: bool | None = None
    unsupported: str | None = None

    def citations(self) -> list[dict[str, object]]:
        """The passages as citations: number, document, section, version, snapshot, whether the
        answer cites it, and the text."""
        return [
            {"number": n, **p.citation(), "cited": n in self.cited, "text": p.text}
            for n, p in enumerate(self.passages, start=1)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a result (``ragtune ask --json``)."""
        return {
            "answer": self.text,
            "route": self.route.to_dict(),
            "classified": self.classified,
            "supported": self.supported,
            "unsupported": self.unsupported,
            "citations": self.citations(),
            "contract": {
                "ok": self.contract_ok,
                "contract_violation": self.contract_violation,
                "errors": self.contract_errors,
                "repaired": self.repaired,
            },
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
            "finish_reason": self.finish_reason,
            "model": self.model,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


class Runtime:
    """What the steps share: the project, its knowledge, contracts, examples and the backend.

    Args:
        project: The loaded project.
        backend: The generation backend, or a factory that makes one for the project when the
            first request needs it; default: the one ``model.backend`` names
            (:func:`ragtune.generate.backend.open_backend`).
        embedder: The embedder for retrieval, few-shot and routing; default: the project's.
        decisions: Strategy per capability; default: the audit's decisions.
        guided: Decoding guided by the contract (a JSON Schema or a regex) where the backend can
            (default).
        classifiers: Let the capabilities' label classifiers (``classify:``) pick their field
            (default); False leaves every field to the model (the lab measures the strategies
            themselves so).
        support: Check a reader's answers against their passages and quote the closest clause
            in place of an unsupported one (:mod:`ragtune.runtime.support`; default); False
            serves what the reader wrote (the lab's RAG+reader arm is the reader alone).
    """

    def __init__(
        self,
        project: Project,
        backend: Backend | BackendFactory | None = None,
        *,
        embedder: Embedder | None = None,
        decisions: dict[str, str] | None = None,
        guided: bool = True,
        classifiers: bool = True,
        support: bool = True,
    ) -> None:
        self.project = project
        self.guided = guided
        self.classifiers = classifiers
        self.support = support
        """Keep answers inside their JSON Schema or regex contract while decoding (llama.cpp's
        grammars, llguidance on transformers: :mod:`ragtune.generate.guide`); False lets the
        model answer freely and only validates."""
        self._backend: Backend | None = backend if isinstance(backend, Backend) else None
        self._factory: BackendFactory | None = None if isinstance(backend, Backend) else backend
        self._embedder = embedder
        self.lock = threading.RLock()
        """Held while the store is read or written and while shared parts load: take it to
        sync the knowledge beside a serving runtime."""
        self.capabilities = {c.name: c for c in project.config.capabilities}
        if decisions is None:
            from ragtune.audit import decisions as decide_all

            decisions = decide_all(project)
        self.decisions = decisions
        self.contracts: dict[str, OutputContract] = {
            c.name: load_contract(project.resolve(c.output_contract), project.root)
            for c in project.config.capabilities
            if c.output_contract
        }
        self._kb: KnowledgeBase | None = None
        self._indexed: set[str] = set()
        self._router: Any = None
        self._tools: dict[str, list[Tool]] = {}  # per capability, imported once
        # Per capability: the manifest's mtime it was loaded at, and the classifier (or None).
        self._classifiers: dict[str, tuple[int | None, Classifier | None]] = {}
        self._trained: dict[str, tuple[int, dict[str, Any]]] = {}

    # -- shared parts, loaded on first use ---------------------------------------------------

    @property
    def knowledge(self) -> KnowledgeBase:
        """The project's knowledge base (``.ragtune/knowledge.db``)."""
        with self.lock:
            if self._kb is None:
                from ragtune.knowledge.base import KnowledgeBase

                self._kb = KnowledgeBase(self.project, embedder=self._embedder)
            return self._kb

    @property
    def embedder(self) -> Embedder:
        """The project's embedder, shared by retrieval, few-shot selection and routing."""
        return self.knowledge.embedder

    @property
    def backend_loaded(self) -> bool:
        """Whether the generation backend has been made (a model may be in memory)."""
        return self._backend is not None

    @property
    def backend(self) -> Backend:
        """The generation backend, made on first use (by the factory given, else by
        :func:`ragtune.generate.backend.open_backend`)."""
        with self.lock:
            if self._backend is None:
                from ragtune.generate.backend import open_backend

                self._backend = (self._factory or open_backend)(self.project)
            return self._backend

    @property
    def loaded_backend(self) -> Backend | None:
        """The backend if it has been made, without making it."""
        return self._backend

    @property
    def adapters_root(self) -> Path:
        """``.ragtune/adapters``."""
        return self.project.adapters_dir

    def adapter_for(self, capability: str) -> str | None:
        """The trained adapter of a capability, or None when there is none."""
        from ragtune.adapters import MANIFEST

        return capability if (self.adapters_root / capability / MANIFEST).is_file() else None

    def passage_chars(self, route: Route) -> int:
        """Characters per passage in the prompt: what the route's adapter was trained with
        (context-aware training clips passages), else :data:`PASSAGE_CHARS`."""
        chars = self._trained_with(route, "context_chars")
        return chars if isinstance(chars, int) and chars > 0 else PASSAGE_CHARS

    def context_order(self, route: Route) -> str:
        """How the route's adapter was trained to find its passages ordered
        (``context_order``): ``reranked`` or the search's order (``retrieved``)."""
        return (
            "reranked" if self._trained_with(route, "context_order") == "reranked" else "retrieved"
        )

    def adapter_shots(self, route: Route) -> int:
        """Few-shot examples the route's adapter was trained with (``train.shots``), which it is
        served with too; 0 without an adapter or shots."""
        shots = self._trained_with(route, "shots")
        return shots if isinstance(shots, int) and shots > 0 else 0

    def _trained_with(self, route: Route, setting: str) -> object:
        """A training setting of the route's adapter (its manifest's ``config``), or None.

        A request asks for several (its passages' order and length, its shots, and the length
        again for the support check): the manifest is read once and again only when it changed
        on disk (a retrained adapter)."""
        if route.adapter is None:
            return None
        from ragtune.adapters import MANIFEST, AdapterError, adapter_path, load_manifest

        try:
            stamp = (adapter_path(self.adapters_root, route.adapter) / MANIFEST).stat().st_mtime_ns
        except OSError:
            return None
        cached = self._trained.get(route.adapter)
        if cached is None or cached[0] != stamp:
            try:
                config = load_manifest(self.adapters_root, route.adapter).config
            except AdapterError:
                return None
            cached = self._trained[route.adapter] = (stamp, config)
        return cached[1].get(setting)

    def capability(self, name: str) -> Capability:
        """A capability by name; the error lists the known ones."""
        try:
            return self.capabilities[name]
        except KeyError:
            close = closest(name, self.capabilities)
            hint = f" Did you mean {close!r}?" if close else ""
            raise PipelineError(
                f"no capability {name!r} in {self.project.path}.{hint} Capabilities: "
                f"{', '.join(self.capabilities)}."
            ) from None

    def classifier_for(self, capability: str) -> Classifier | None:
        """The capability's label classifier (``classify:``), loaded on first use and again
        when ``ragtune build`` has tuned it anew (its manifest changed on disk); None when it has
        none, or none tuned for its field yet (the answer is then guided by the whole
        contract, and a warning is logged)."""
        cap = self.capability(capability)
        if cap.classify is None or not self.classifiers:
            return None
        from ragtune.behavior.classify import MANIFEST, Classifier, ClassifierError, classifier_dir

        try:
            stamp = (classifier_dir(self.project, capability) / MANIFEST).stat().st_mtime_ns
        except OSError:
            stamp = None
        with self.lock:
            cached = self._classifiers.get(capability)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            loaded: Classifier | None = None
            try:
                loaded = Classifier(self.project, capability)
            except ClassifierError as exc:
                _log.warning("%s: serving without its classifier: %s", capability, exc)
            if loaded is not None and loaded.field != cap.classify.field:
                _log.warning(
                    "%s: its classifier decides %r, not classify: %r; `ragtune build` tunes "
                    "it again. Serving without it.",
                    capability,
                    loaded.field,
                    cap.classify.field,
                )
                loaded = None
            self._classifiers[capability] = (stamp, loaded)
            return loaded

    def shots_for(self, capability: str, query: str, k: int = DEFAULT_K) -> list[Example]:
        """The ``k`` examples of a capability most like the query (indexed on first use)."""
        from ragtune.behavior.fewshot import index_examples, select_examples

        cap = self.capability(capability)
        if not cap.examples:
            return []
        with self.lock:
            kb = self.knowledge
            if capability not in self._indexed:
                examples = load_examples(self.project.resolve(cap.examples), self.project.root)
                index_examples(kb.store, capability, examples, kb.embedder)
                self._indexed.add(capability)
            return select_examples(kb.store, capability, query, kb.embedder, k)

    def search(self, query: str, capabilities: Sequence[str], k: int) -> list[Passage]:
        """Hybrid search of these capabilities' documents, plus their tools' answers."""
        documents = [n for n in capabilities if _has_documents(self.capability(n))]
        passages: list[Passage] = []
        with self.lock:
            kb = self.knowledge
            if documents and kb.store.latest_snapshot() > 0:
                passages = [h.passage() for h in kb.search(query, k=k, capability=documents)]
            for name in capabilities:
                if name not in self._tools:
                    self._tools[name] = kb.tools(name)
                for found in self._tools[name]:
                    for text in found(query):
                        passages.append(
                            Passage(text, found.ref, found.name, found.ref, text_sha1(text))
                        )
        return passages

    def route_by_similarity(self, question: str) -> tuple[str, float]:
        """The capability whose requests are most like the question: the best cosine
        similarity between the question and each capability's description and labelled
        requests (:func:`routing_texts`), with the score.

        A description alone says what a capability is for, in the team's words, and routed a
        third of the example's rephrased questions wrongly; the requests the team has already
        labelled - its eval lines and its examples - say how the capability is asked.
        """
        import numpy as np

        with self.lock:
            if self._router is None:
                names, texts = routing_texts(self.project)
                matrix = np.asarray(self.embedder.embed(texts), dtype=np.float32)
                self._router = (names, matrix)
            names, matrix = self._router
        query = np.asarray(self.embedder.embed([question]), dtype=np.float32)[0]
        similarity = matrix @ query
        scores: dict[str, float] = {}
        for name in dict.fromkeys(names):
            mine = np.sort(similarity[[n == name for n in names]])[::-1][:ROUTING_NEIGHBOURS]
            scores[name] = float(mine.mean())
        best = max(scores, key=lambda n: scores[n])
        return best, scores[best]

    def close(self, *, backend: bool = False) -> None:
        """Close the knowledge store; with ``backend``, the generation backend too (once
        loaded), for a runtime that owns its backend."""
        if self._kb is not None:
            self._kb.close()
        if backend and self._backend is not None:
            self._backend.close()


ROUTING_NEIGHBOURS = 3
"""A capability's score is the mean similarity of its this many requests most like the
question: one look-alike example does not win a request."""

ROUTING_EXAMPLES = 64
"""At most this many of a capability's examples (and as many eval lines) route requests to it."""


def routing_texts(project: Project) -> tuple[list[str], list[str]]:
    """What routes a request, as ``(capability, text)`` columns: each capability's
    description, then the requests labelled with it - the ``input`` of its eval lines
    (``eval/*.jsonl``, rephrasings included) and of its examples file, at most
    :data:`ROUTING_EXAMPLES` of each. A file that cannot be read routes nothing (the lab and
    training report its problems)."""
    import json

    known = {c.name for c in project.config.capabilities}
    names = [c.name for c in project.config.capabilities]
    texts = [c.description for c in project.config.capabilities]
    labelled: dict[str, list[str]] = {name: [] for name in known}
    folder = project.root / "eval"
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or row.get("capability") not in known:
                continue
            asked = [row.get("input"), *(row.get("rephrased") or [])]
            labelled[row["capability"]].extend(q for q in asked if isinstance(q, str) and q)
    for name, requests in labelled.items():
        for text in requests[:ROUTING_EXAMPLES]:
            names.append(name)
            texts.append(text)
    for capability in project.config.capabilities:
        if not capability.examples:
            continue
        try:
            examples = load_examples(project.resolve(capability.examples), project.root)
        except RagtuneError:
            continue
        for example in examples.examples[:ROUTING_EXAMPLES]:
            names.append(capability.name)
            texts.append(example.input)
    return names, texts


def _has_documents(capability: Capability) -> bool:
    from ragtune.knowledge.tools import is_tool_ref

    return any(not is_tool_ref(ref) for ref in capability.sources)
