"""ragtune from Python: one project, its audit, plan, build, search and answers.

>>> import ragtune
>>> with ragtune.load("my-review") as rt:            # the folder holding ragtune.yaml
...     report = rt.audit()                          # a decision per capability
...     rt.build()                                   # sync the knowledge, train what is stale
...     hits = rt.search("breach notification window", k=3)
...     answer = rt.ask("How many hours do we have to notify a breach?")
...     print(answer.text, answer.citations())

Everything here is what the CLI and the server call; nothing is loaded before it is needed (the
embedder on the first search or routed question, the model on the first answer), and
``import ragtune`` stays light. The retrievers for LangChain and LlamaIndex live in
:mod:`ragtune.integrations`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from ragtune.project import Project, load_project

if TYPE_CHECKING:
    from ragtune.audit.model import AuditReport
    from ragtune.build import BuildResult, ProjectPlan
    from ragtune.generate.backend import Backend, BackendFactory
    from ragtune.knowledge.embed import Embedder
    from ragtune.knowledge.search import Hit
    from ragtune.knowledge.sync import SyncResult
    from ragtune.runtime.runtime import Result, Runtime

__all__ = ["Ragtune", "load"]


class Ragtune:
    """One project, opened for use from Python.

    Args:
        project: The loaded project (:func:`load` loads it from its folder).
        backend: The generation backend, or a factory of one; default: the project's
            ``model.backend`` (llama.cpp where installed), loaded on the first answer.
        embedder: The embedder; default: the project's ``knowledge.embedder``, loaded on first
            use.

    Use it as a context manager, or call :meth:`close`, to release the store and the model.
    """

    def __init__(
        self,
        project: Project,
        *,
        backend: Backend | BackendFactory | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.project = project
        self._backend = backend
        self._embedder = embedder
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        """The runtime that answers (created on first use; it holds the knowledge store)."""
        if self._runtime is None:
            from ragtune.runtime.runtime import Runtime

            self._runtime = Runtime(self.project, self._backend, embedder=self._embedder)
        return self._runtime

    def audit(self) -> AuditReport:
        """The audit: a decision per capability, its path, warnings and costs
        (:func:`ragtune.audit.run_audit`)."""
        from ragtune.audit import run_audit

        return run_audit(self.project)

    def plan(self) -> ProjectPlan:
        """What :meth:`build` would do and why, without doing it."""
        from ragtune.build import make_plan

        return make_plan(self.project)

    def build(self, *, train: bool = True) -> BuildResult:
        """Sync the knowledge, then train (or install) the adapters the plan lists.

        Args:
            train: False syncs the knowledge only.
        """
        from ragtune.build import build

        with self.runtime.lock:
            result = build(self.project, train=train)
        self._reload_adapters(result)
        return result

    def sync(self) -> SyncResult:
        """Sync the knowledge sources into the store: only what changed is embedded."""
        runtime = self.runtime
        with runtime.lock:
            return runtime.knowledge.sync()

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        capability: str | Sequence[str] | None = None,
        as_of: str | None = None,
        mode: Literal["hybrid", "vector", "bm25"] = "hybrid",
    ) -> list[Hit]:
        """The ``k`` passages that best answer ``query``, each with its citation.

        Args:
            query: What to look for.
            k: How many hits.
            capability: Only the sources of this capability (or these).
            as_of: The knowledge as it was at a snapshot number, a date or a time.
            mode: ``hybrid`` (keywords and vectors, fused), ``vector`` or ``bm25``.

        Returns:
            The hits, best first: text, document, section, version, snapshot and score.
        """
        runtime = self.runtime
        with runtime.lock:
            return runtime.knowledge.search(
                query, k=k, capability=capability, as_of=as_of, mode=mode
            )

    def ask(
        self,
        question: str,
        *,
        capability: str | None = None,
        history: Sequence[dict[str, str]] = (),
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Result:
        """Answer ``question`` as the server would: routed (or sent to ``capability``),
        retrieved, generated, validated against the output contract.

        Args:
            question: The request.
            capability: The capability to answer with; None routes by the question.
            history: Earlier chat turns (``{"role": ..., "content": ...}``).
            max_tokens: The answer's token budget.
            temperature: 0 answers greedily.

        Returns:
            The result: ``text``, ``citations()``, ``route``, the contract's verdict, usage
            and timings (``to_dict()`` gives the JSON shape of ``ragtune ask --json``).
        """
        from ragtune.runtime.pipeline import run
        from ragtune.runtime.runtime import Request

        request = Request(question, capability, tuple(history), max_tokens, temperature)
        return run(self.runtime, request)

    def close(self) -> None:
        """Release the knowledge store and the model."""
        if self._runtime is not None:
            self._runtime.close(backend=True)
            self._runtime = None

    def __enter__(self) -> Ragtune:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _reload_adapters(self, result: BuildResult) -> None:
        """A loaded model serves the adapters a build just trained or installed."""
        runtime = self._runtime
        if runtime is None or not runtime.backend_loaded:
            return
        for name in [*result.installed, *(done.capability for done in result.adapters)]:
            runtime.backend.reload_adapter(name)


def load(
    project: str | Path = ".",
    *,
    backend: Backend | BackendFactory | None = None,
    embedder: Embedder | None = None,
) -> Ragtune:
    """Open a project: the folder holding ``ragtune.yaml``, or the file itself.

    Raises:
        ProjectError: The project file is missing or invalid (names the file, line and field).
    """
    return Ragtune(load_project(project), backend=backend, embedder=embedder)
