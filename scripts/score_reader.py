"""Score a knowledge capability's reader on the questions it never trained on, before and after
a change set, through the served runtime.

The project is copied as the lab copies it (its adapters and knowledge store with it, under
``.ragtune/lab/work``; the original is not touched) and its knowledge synced. Each of the
capability's eval lines on the held-out side of the reader's split
(:func:`ragtune.behavior.reader.question_split`, the side ``team_pairs`` never trains on) is
asked through :func:`ragtune.runtime.pipeline.run`, greedy: the route the runtime picks (the
reader adapter where one is installed), the passages it retrieves, the prompt it builds. Then
the change set's documents replace the ones they revise (as ``ragtune lab --drift`` does), the
knowledge re-syncs, and the lines whose answer the change revises (``after``) are asked again
and scored on their new facts. Reported per phase:

- **fact accuracy**: the mean share of the expected facts each answer holds
  (:func:`ragtune.lab.metrics.fact_score`), over the lines' own questions;
- the same over their **rephrasings** (the lines' ``rephrased``: never trained on either, a
  larger sample of the same facts);
- **right**: answers holding every expected fact, of all those asked.

::

    .venv/bin/python scripts/score_reader.py /tmp/cr --drift /tmp/cr/changes --threads 2
    .venv/bin/python scripts/score_reader.py /tmp/cr --drift /tmp/cr/changes --show --json
    .venv/bin/python scripts/score_reader.py /tmp/cr --base    # plain RAG: no reader
    .venv/bin/python scripts/score_reader.py /tmp/cr --answer generate   # the reader writes
    .venv/bin/python scripts/score_reader.py /tmp/cr --answer generate --no-support  # unchecked

The reader's answers go through the runtime's support check (:mod:`ragtune.runtime.support`)
as served: one its passages do not support is replaced by the quote of the closest clause, and
the report counts them; ``--no-support`` scores what the reader wrote.

Exit status: 0 when every phase reaches ``--target`` on its own questions (0.8, issue 14's),
1 when one does not, 2 on bad input. ``tests/test_reader_accuracy.py`` scores with the same
functions (:func:`score`, :func:`held_out_items`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.behavior.capability import capability_of
from ragtune.behavior.reader import question_split
from ragtune.errors import RagtuneError
from ragtune.lab.evalset import EvalItem
from ragtune.lab.metrics import fact_score
from ragtune.project import Project, load_project
from ragtune.runtime.pipeline import run
from ragtune.runtime.runtime import Request, Runtime

TARGET = 0.8
"""Issue 14's target: fact accuracy of RAG + reader on the held-out questions, each phase."""

MAX_TOKENS = 120
"""Token budget of one answer: the longest of the team's answers is about 60 tokens."""


@dataclass(frozen=True)
class Asked:
    """One question asked and how its answer scored.

    Attributes:
        question: What was asked (a line's input or one of its rephrasings).
        rephrased: It is a rephrasing, not the line's own question.
        expected: The facts the answer must hold.
        answer: The runtime's answer.
        score: The share of the facts it holds.
        adapter: The adapter that answered, or None (the base model).
        strategy: The route's strategy: ``retrieval`` (a model wrote the answer) or ``quote``.
        unsupported: What the reader wrote when its passages did not support it and the
            closest clause was quoted instead (:mod:`ragtune.runtime.support`); else None.
    """

    question: str
    rephrased: bool
    expected: tuple[str, ...]
    answer: str
    score: float
    adapter: str | None
    strategy: str = "retrieval"
    unsupported: str | None = None


@dataclass
class Phase:
    """The questions of one phase (``before`` or ``after`` the change set) and their scores."""

    name: str
    asked: list[Asked] = field(default_factory=list)

    def accuracy(self, rephrased: bool = False) -> float | None:
        """Mean fact accuracy of the lines' questions (or of their rephrasings)."""
        scores = [a.score for a in self.asked if a.rephrased == rephrased]
        return sum(scores) / len(scores) if scores else None

    def count(self, rephrased: bool = False) -> int:
        """How many questions (or rephrasings) were asked."""
        return sum(a.rephrased == rephrased for a in self.asked)

    @property
    def right(self) -> int:
        """Answers holding every expected fact."""
        return sum(a.score == 1.0 for a in self.asked)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the phase (``--json``)."""
        return {
            "phase": self.name,
            "questions": self.count(),
            "accuracy": _round(self.accuracy()),
            "rephrasings": self.count(rephrased=True),
            "rephrased_accuracy": _round(self.accuracy(rephrased=True)),
            "right": self.right,
            "asked": len(self.asked),
            "rows": [dataclasses.asdict(a) for a in self.asked],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def scratch_copy(project: Project) -> Project:
    """The project copied as the lab copies it (:func:`ragtune.lab.runner.workspace`: its
    files, knowledge store and installed adapters, under ``.ragtune/lab/work``); the original's
    documents, store and adapters are never written to."""
    from ragtune.lab.runner import workspace

    return workspace(project)


def held_out_items(project: Project, capability: str, *, after: bool) -> list[EvalItem]:
    """The capability's eval lines on the held-out side of the reader's split (the files and
    seed its team pairs are read with); ``after``: only those whose answer the change set
    revises.

    Raises:
        RagtuneError: The capability has no such line.
    """
    _, items, _ = question_split(project, capability_of(project, capability))
    if after:
        items = [i for i in items if i.after is not None]
    if not items:
        which = "revised by the change set (`after`)" if after else "held out"
        raise RagtuneError(f"capability {capability!r} has no eval line {which} to score")
    return items


def score_phase(
    runtime: Runtime,
    capability: str,
    items: Sequence[EvalItem],
    name: str,
    *,
    progress: Callable[[Asked], None] | None = None,
) -> Phase:
    """Ask each line's question and rephrasings through the served runtime, greedy, and score
    the answers on the line's facts (``after``'s in the ``after`` phase)."""
    phase = Phase(name)
    for item in items:
        expected = item.after.expected if name == "after" and item.after else item.expected
        questions = [(item.input, False)] + [(q, True) for q in item.rephrased]
        for question, rephrased in questions:
            result = run(runtime, Request(question, capability, max_tokens=MAX_TOKENS))
            score = fact_score(result.text, expected)
            asked = Asked(
                question, rephrased, tuple(expected), result.text, score or 0.0,
                result.route.adapter, result.route.strategy, result.unsupported,
            )  # fmt: skip
            phase.asked.append(asked)
            if progress is not None:
                progress(asked)
    return phase


def score(
    project: Project,
    capability: str,
    *,
    drift: Path | None,
    base: bool = False,
    answer: str | None = None,
    threads: int | None = None,
    support: bool = True,
    progress: Callable[[Asked], None] | None = None,
) -> list[Phase]:
    """Score ``before`` and, with a change set, ``after`` in a scratch copy of the project.
    ``base``: plain RAG, the reader left out (the base model reads the passages); ``answer``:
    ``generate`` or ``quote`` in place of the capability's own ``answer`` setting; ``support``:
    the runtime's support check (False: the reader's answers are served as written).

    Raises:
        RagtuneError: No line to score, or a change set that matches no document.
    """
    from ragtune.lab.drift import apply_change_set, change_set

    before = held_out_items(project, capability, after=False)
    after = held_out_items(project, capability, after=True) if drift is not None else []
    changes = change_set(project, drift) if drift is not None else []
    work = scratch_copy(project)
    if threads is not None:
        model = work.config.model.model_copy(update={"threads": threads})
        work = dataclasses.replace(work, config=work.config.model_copy(update={"model": model}))
    if answer is not None:
        capabilities = [
            c.model_copy(update={"answer": answer}) if c.name == capability else c
            for c in work.config.capabilities
        ]
        config = work.config.model_copy(update={"capabilities": capabilities})
        work = dataclasses.replace(work, config=config)
    runtime = _Runtime(work, base=base, support=support)
    try:
        with runtime.lock:
            runtime.knowledge.sync()
        phases = [score_phase(runtime, capability, before, "before", progress=progress)]
        if changes:
            apply_change_set(work, changes)
            with runtime.lock:
                runtime.knowledge.sync()
            phases.append(score_phase(runtime, capability, after, "after", progress=progress))
    finally:
        runtime.close()
    return phases


class _Runtime(Runtime):
    """The project's runtime; ``base``: without any adapter (plain RAG for a knowledge
    capability)."""

    def __init__(self, project: Project, *, base: bool, support: bool) -> None:
        super().__init__(project, support=support)
        self._base = base

    def adapter_for(self, capability: str) -> str | None:
        return None if self._base else super().adapter_for(capability)


def report(phases: Sequence[Phase], capability: str) -> str:
    """The figures as a small table, then the answers that missed a fact."""
    first = next((a for p in phases for a in p.asked), None)
    if first is not None and first.strategy == "quote":
        served = "RAG, quoted (answer: quote)"
    elif first is not None and first.adapter:
        served = f"RAG + reader {first.adapter!r}"
    else:
        served = "RAG, base model"
    lines = [
        f"{capability}: {served}",
        f"{'phase':8} {'questions':>9} {'accuracy':>9} {'rephrasings':>12} {'accuracy':>9} "
        f"{'right':>9}",
    ]
    for p in phases:
        lines.append(
            f"{p.name:8} {p.count():9d} {_shown(p.accuracy()):>9} {p.count(True):12d} "
            f"{_shown(p.accuracy(True)):>9} {f'{p.right}/{len(p.asked)}':>9}"
        )
    total = sum(p.right for p in phases)
    lines.append(f"right in all: {total} of {sum(len(p.asked) for p in phases)}")
    quoted = sum(a.unsupported is not None for p in phases for a in p.asked)
    if quoted:
        lines.append(
            f"quoted by the support check: {quoted} of the reader's answers, not supported by "
            "their passages"
        )
    misses = [(p.name, a) for p in phases for a in p.asked if a.score < 1.0]
    if misses:
        lines.append("missed:")
        lines += [f"  [{name}] {a.question} -> {a.answer[:160]!r}" for name, a in misses]
    return "\n".join(lines)


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, score, print; the exit status says whether the target is met."""
    parser = argparse.ArgumentParser(
        description="Score a knowledge capability's reader on its held-out questions, before "
        "and after a change set, through the served runtime."
    )
    parser.add_argument("project", type=Path, help="the project folder (or its ragtune.yaml)")
    parser.add_argument("--capability", default="templates", help="default: templates")
    parser.add_argument("--drift", type=Path, default=None, help="a folder of revised documents")
    parser.add_argument("--base", action="store_true", help="plain RAG: the base model reads")
    parser.add_argument(
        "--answer",
        choices=("generate", "quote"),
        default=None,
        help="answer the capability's way (default) or override it: a model writes the answer, "
        "or the closest clause is quoted",
    )
    parser.add_argument(
        "--no-support",
        action="store_true",
        help="serve the reader's answers as written, not checked against their passages",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for generation")
    parser.add_argument("--target", type=float, default=TARGET, help=f"default: {TARGET}")
    parser.add_argument("--show", action="store_true", help="print each answer as it comes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    from ragtune.cli import quiet_libraries

    quiet_libraries()

    def tick(asked: Asked) -> None:
        if args.show:
            print(f"  {asked.score:.2f}  {asked.question}", file=sys.stderr)

    try:
        phases = score(
            load_project(args.project),
            args.capability,
            drift=args.drift,
            base=args.base,
            answer=args.answer,
            threads=args.threads,
            support=not args.no_support,
            progress=tick,
        )
    except RagtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([p.to_dict() for p in phases], indent=2, ensure_ascii=False))
    else:
        print(report(phases, args.capability))
    met = all((p.accuracy() or 0.0) >= args.target for p in phases)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
