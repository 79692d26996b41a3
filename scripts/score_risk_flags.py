"""Score a project's ``risk_flags`` capability: guided compliance and category accuracy.

Each clause goes through the project's runtime as the server would serve it
(:func:`ragtune.runtime.pipeline.run` with ``capability="risk_flags"``): the route the audit
decides, the capability's adapter when one is installed in ``PROJECT/.ragtune/adapters`` (or the
one ``--adapter`` names), the playbook passages its ``context_from`` retrieves, and the decoding
guided by its JSON Schema contract, with the ``category`` picked by its label classifier
(``classify: category``; tuned first when it never was, as ``ragtune build`` would;
``--no-classifier`` leaves it to the model). Reported, over the clauses:

- **compliance**: the share of answers valid against the schema on the first attempt, before
  the runtime's repair attempt (``Result.contract_ok`` and not ``Result.repaired``);
- **category accuracy**: the share whose ``category`` is the clause's CUAD category;
- **risk agreement**: the share whose ``risk`` is the level the team gave (reported, not a
  target; only for clauses that carry one).

The clauses come from ``tests/data/risk_flag_clauses.jsonl`` (30 clauses written for this test,
``{"input", "category", "risk", "note"}``), ``--clauses FILE`` in the same format, or ``--eval``:
the project's own ``risk_flags`` eval lines (``eval/*.jsonl``, ``expected[0]`` the category).
A project whose knowledge was never synced is synced first (as ``ragtune build`` would), so the
clauses are served with the context the adapter was trained with::

    .venv/bin/python scripts/score_risk_flags.py /tmp/cr
    .venv/bin/python scripts/score_risk_flags.py /tmp/cr --eval --threads 1
    .venv/bin/python scripts/score_risk_flags.py /tmp/cr --base --backend transformers --json

Exit status: 0 when both targets are met (compliance >= 0.98, category accuracy >= 0.90), 1
when one is missed, 2 on bad input. ``tests/test_risk_flag_accuracy.py`` scores with the same
functions (:func:`load_clauses`, :func:`load_eval_clauses`, :func:`score`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.project import Project, load_project
from ragtune.runtime.runtime import Result, Runtime

CAPABILITY = "risk_flags"
"""The capability scored."""

COMPLIANCE_TARGET = 0.98
CATEGORY_TARGET = 0.90
"""Issue 14's targets for the adapter trained at the example's full settings."""

DEFAULT_CLAUSES = Path(__file__).resolve().parents[1] / "tests" / "data" / "risk_flag_clauses.jsonl"

MAX_TOKENS = 160
"""Token budget of one answer: the longest training answer is about 70 tokens."""

INSTALLED = "installed"
"""``adapter`` value: the capability's adapter when one is installed, else the base model."""


class ClauseError(RagtuneError):
    """A clauses file cannot be read: the file, line and field are named."""


@dataclass(frozen=True)
class Clause:
    """One clause to flag, with the answer the team expects.

    Attributes:
        input: The clause text.
        category: Its CUAD category, as in the contract's enum.
        risk: The risk level the team gives it, or None when the source gives none.
        where: ``file:line`` it came from.
    """

    input: str
    category: str
    risk: str | None
    where: str


@dataclass(frozen=True)
class Flagged:
    """One clause as the runtime flagged it.

    Attributes:
        clause: The clause and what was expected.
        answer: The answer kept by the runtime (after a repair, when there was one).
        first_ok: The first answer was valid against the schema (no repair needed).
        ok: The answer kept is valid (after the repair attempt, if any).
        category: The ``category`` the answer gives, or None when it gives none.
        risk: The ``risk`` the answer gives, or None.
        seconds: Time the request took.
    """

    clause: Clause
    answer: str
    first_ok: bool
    ok: bool
    category: str | None
    risk: str | None
    seconds: float

    @property
    def category_right(self) -> bool:
        """The answer gives the expected category."""
        return self.category == self.clause.category

    @property
    def risk_right(self) -> bool | None:
        """The answer gives the expected risk; None when none is expected."""
        return None if self.clause.risk is None else self.risk == self.clause.risk


@dataclass
class Score:
    """What scoring a set of clauses measured.

    Attributes:
        flagged: One row per clause, in order.
        strategy: How the runtime served them (``lora``, ``prompt``, ``few-shot``).
        adapter: The adapter applied, or None for the base model.
        backend: The generation backend (``llama.cpp``, ``transformers``...).
        classifier: The field the capability's label classifier picked (``category``), or
            None when the model chose every field.
        seconds: Wall time of the whole run, loading included.
    """

    flagged: list[Flagged] = field(default_factory=list)
    strategy: str = ""
    adapter: str | None = None
    backend: str = ""
    classifier: str | None = None
    seconds: float = 0.0

    @property
    def compliance(self) -> float:
        """Share of first answers valid against the schema (before any repair)."""
        return _share([f.first_ok for f in self.flagged])

    @property
    def compliance_after_repair(self) -> float:
        """Share of kept answers valid against the schema (the repair attempt included)."""
        return _share([f.ok for f in self.flagged])

    @property
    def category_accuracy(self) -> float:
        """Share of answers giving the expected category."""
        return _share([f.category_right for f in self.flagged])

    @property
    def risk_agreement(self) -> float | None:
        """Share of answers giving the expected risk, over clauses that carry one."""
        judged = [f.risk_right for f in self.flagged if f.risk_right is not None]
        return _share(judged) if judged else None

    @property
    def meets_targets(self) -> bool:
        """Both of issue 14's targets are met."""
        return self.compliance >= COMPLIANCE_TARGET and self.category_accuracy >= CATEGORY_TARGET

    def misses(self) -> list[Flagged]:
        """Rows with a non-compliant first answer or a wrong category."""
        return [f for f in self.flagged if not f.first_ok or not f.category_right]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the score (``--json``)."""
        return {
            "capability": CAPABILITY,
            "clauses": len(self.flagged),
            "strategy": self.strategy,
            "adapter": self.adapter,
            "backend": self.backend,
            "classifier": self.classifier,
            "compliance": round(self.compliance, 4),
            "compliance_after_repair": round(self.compliance_after_repair, 4),
            "category_accuracy": round(self.category_accuracy, 4),
            "risk_agreement": _round(self.risk_agreement),
            "targets": {"compliance": COMPLIANCE_TARGET, "category_accuracy": CATEGORY_TARGET},
            "meets_targets": self.meets_targets,
            "seconds": round(self.seconds, 1),
            "rows": [
                {
                    "where": f.clause.where,
                    "expected": {"category": f.clause.category, "risk": f.clause.risk},
                    "got": {"category": f.category, "risk": f.risk},
                    "first_ok": f.first_ok,
                    "ok": f.ok,
                    "answer": f.answer,
                    "seconds": round(f.seconds, 2),
                }
                for f in self.flagged
            ],
        }


def _share(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- the clauses ---------------------------------------------------------------------------------


def categories(project: Project) -> tuple[str, ...]:
    """The categories the ``risk_flags`` contract allows (its schema's ``category`` enum).

    Raises:
        ClauseError: The capability has no JSON Schema contract with a ``category`` enum.
    """
    from ragtune.behavior.contract import load_contract

    cap = next((c for c in project.config.capabilities if c.name == CAPABILITY), None)
    if cap is None or not cap.output_contract:
        raise ClauseError(f"{project.path}: no capability {CAPABILITY!r} with an output_contract.")
    contract = load_contract(project.resolve(cap.output_contract), project.root)
    schema = getattr(contract, "schema", None)
    enum = (
        schema.get("properties", {}).get("category", {}).get("enum")
        if isinstance(schema, dict)
        else None
    )
    if not isinstance(enum, list) or not enum:
        raise ClauseError(
            f"{cap.output_contract}: the {CAPABILITY} contract has no 'category' enum to score."
        )
    return tuple(str(c) for c in enum)


def load_clauses(path: Path, allowed: Sequence[str]) -> list[Clause]:
    """Clauses from a JSONL file, one ``{"input", "category", "risk"?, "note"?}`` a line.

    Raises:
        ClauseError: A line that is not such an object, names a category outside ``allowed``
            or a risk other than low/medium/high (the file, line and value are named).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClauseError(f"{path}: cannot read the clauses: {exc}") from exc
    clauses: list[Clause] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ClauseError(f"{where}: not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise ClauseError(f"{where}: expected a JSON object, got {type(row).__name__}.")
        text, category, risk = row.get("input"), row.get("category"), row.get("risk")
        if not isinstance(text, str) or not text.strip():
            raise ClauseError(f"{where}: 'input' must be the clause text, got {text!r}.")
        clauses.append(Clause(text, _category(category, where, allowed), _risk(risk, where), where))
    if not clauses:
        raise ClauseError(f"{path}: no clauses in the file.")
    return clauses


def load_eval_clauses(project: Project, allowed: Sequence[str]) -> list[Clause]:
    """The project's ``risk_flags`` eval lines (``eval/*.jsonl``) as clauses: ``expected[0]`` is
    the category; they carry no risk.

    Raises:
        ClauseError: No such lines, or one whose ``expected[0]`` is not an allowed category.
    """
    from ragtune.lab.evalset import default_eval_paths, load_eval

    items = [
        i for i in load_eval(default_eval_paths(project), project) if i.capability == CAPABILITY
    ]
    if not items:
        raise ClauseError(f"{project.root / 'eval'}: no {CAPABILITY} eval lines to score.")
    clauses = []
    for item in items:
        category = _category(item.expected[0] if item.expected else None, item.where, allowed)
        clauses.append(Clause(item.input, category, None, item.where))
    return clauses


def _category(value: object, where: str, allowed: Sequence[str]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    from ragtune.errors import closest

    close = closest(str(value), allowed) if isinstance(value, str) else None
    hint = f" Did you mean {close!r}?" if close else ""
    raise ClauseError(f"{where}: category {value!r} is not one of the contract's categories.{hint}")


def _risk(value: object, where: str) -> str | None:
    if value is None or (isinstance(value, str) and value in ("low", "medium", "high")):
        return value
    raise ClauseError(f"{where}: risk {value!r} must be low, medium or high.")


# -- scoring -------------------------------------------------------------------------------------


class _ScoringRuntime(Runtime):
    """The project's runtime, with the adapter of ``risk_flags`` chosen by the caller: the
    installed one (:data:`INSTALLED`), a named one, or None for the base model."""

    def __init__(self, project: Project, adapter: str | None, *, classifiers: bool) -> None:
        super().__init__(project, classifiers=classifiers)
        self._choice = adapter

    def adapter_for(self, capability: str) -> str | None:
        if capability != CAPABILITY or self._choice == INSTALLED:
            return super().adapter_for(capability)
        return self._choice


def with_model(project: Project, *, backend: str | None, threads: int | None) -> Project:
    """The project with ``model.backend`` and ``model.threads`` replaced where given."""
    update: dict[str, object] = {}
    if backend is not None:
        update["backend"] = backend
    if threads is not None:
        update["threads"] = threads
    if not update:
        return project
    model = project.config.model.model_copy(update=update)
    return dataclasses.replace(project, config=project.config.model_copy(update={"model": model}))


def score(
    project: Project,
    clauses: Sequence[Clause],
    *,
    adapter: str | None = INSTALLED,
    backend: str | None = None,
    threads: int | None = None,
    classifier: bool = True,
    progress: Callable[[Flagged], None] | None = None,
) -> Score:
    """Flag each clause through the project's runtime and score the answers.

    Args:
        project: The project (its knowledge is synced first when it never was).
        clauses: What to flag, with the expected category (and risk).
        adapter: :data:`INSTALLED` (the capability's installed adapter, else the base model),
            an adapter name in ``.ragtune/adapters``, or None for the base model.
        backend: ``model.backend`` to use instead of the project's.
        threads: llama.cpp threads (and torch threads for transformers) instead of the project's.
        classifier: Let the capability's label classifier (``classify:``) pick the category, as
            the server does; one never tuned, or stale, is tuned first (as ``ragtune build``
            would). False leaves the category to the model.
        progress: Called with each row as it is scored.

    Raises:
        RagtuneError: The runtime cannot serve (a missing adapter, a backend not installed).
    """
    from ragtune.generate.backend import default_backend
    from ragtune.runtime.pipeline import route, run
    from ragtune.runtime.runtime import Request

    if not clauses:
        raise ClauseError("no clauses to score.")
    started = time.perf_counter()
    project = with_model(project, backend=backend, threads=threads)
    if classifier:
        _tune_classifier(project)
    runtime = _ScoringRuntime(project, adapter, classifiers=classifier)
    result = Score(backend=project.config.model.backend or default_backend())
    torch_threads = _torch_threads(threads) if result.backend == "transformers" else None
    try:
        chosen = route(runtime, Request(clauses[0].input, CAPABILITY))
        result.strategy, result.adapter = chosen.strategy, chosen.adapter
        tuned = runtime.classifier_for(CAPABILITY)
        result.classifier = tuned.field if tuned is not None else None
        if chosen.knowledge and runtime.knowledge.store.latest_snapshot() == 0:
            with runtime.lock:
                runtime.knowledge.sync()
        for clause in clauses:
            clock = time.perf_counter()
            answered = run(runtime, Request(clause.input, CAPABILITY, max_tokens=MAX_TOKENS))
            flagged = flag(clause, answered, time.perf_counter() - clock)
            result.flagged.append(flagged)
            if progress is not None:
                progress(flagged)
    finally:
        runtime.close(backend=True)
        if torch_threads is not None:
            _torch_threads(torch_threads)
    result.seconds = time.perf_counter() - started
    return result


def _tune_classifier(project: Project) -> None:
    """Tune the capability's label classifier when it has one never tuned or stale, as
    ``ragtune build`` would (:func:`ragtune.build.tune_classifiers`)."""
    from ragtune.behavior.classify import ClassifierPlan, classifier_plan
    from ragtune.build import tune_classifiers

    cap = next((c for c in project.config.capabilities if c.name == CAPABILITY), None)
    if cap is None or cap.classify is None:
        return

    @contextmanager
    def announce(planned: ClassifierPlan) -> Iterator[None]:
        print(
            f"tuning the {CAPABILITY} classifier ({', '.join(planned.reasons)}), about 45 s",
            file=sys.stderr,
        )
        yield None

    tune_classifiers(project, [classifier_plan(project, cap)], tuning=announce)


def flag(clause: Clause, answered: Result, seconds: float) -> Flagged:
    """Score one runtime result against its clause: compliant on the first attempt only when
    the contract held and the kept answer is not the repair's."""
    got = _fields(answered.text)
    return Flagged(
        clause=clause,
        answer=answered.text,
        first_ok=answered.contract_ok is True and not answered.repaired,
        ok=answered.contract_ok is True,
        category=got.get("category"),
        risk=got.get("risk"),
        seconds=seconds,
    )


def _fields(text: str) -> dict[str, str]:
    """The string fields of an answer that is a JSON object (empty for anything else)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _torch_threads(threads: int | None) -> int | None:
    """Set torch's threads (when given) and return the previous count."""
    if threads is None:
        return None
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


# -- the report ----------------------------------------------------------------------------------


def report(score_: Score, label: str) -> str:
    """The figures as a table, then one row per miss."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:5.1f}%"

    picked = f", {score_.classifier} by the tuned classifier" if score_.classifier else ""
    served = f"{score_.strategy} ({score_.adapter or 'base model'}, {score_.backend}{picked})"
    n = len(score_.flagged)
    lines = [
        f"risk_flags on {label}: {n} clauses, served by {served}, {score_.seconds:.0f} s",
        "",
        f"{'measure':<30} {'value':>7} {'target':>7}",
        f"{'guided compliance (1st try)':<30} {pct(score_.compliance):>7} "
        f"{pct(COMPLIANCE_TARGET):>7}",
        f"{'compliance after repair':<30} {pct(score_.compliance_after_repair):>7} {'':>7}",
        f"{'category accuracy':<30} {pct(score_.category_accuracy):>7} {pct(CATEGORY_TARGET):>7}",
        f"{'risk agreement':<30} {pct(score_.risk_agreement):>7} {'':>7}",
        "",
        "targets met" if score_.meets_targets else "targets NOT met",
    ]
    misses = score_.misses()
    if misses:
        lines += ["", f"misses ({len(misses)}):"]
        for f in misses:
            why = "not compliant" if not f.first_ok else "category"
            lines.append(
                f"  {Path(f.clause.where).name}  [{why}] expected {f.clause.category!r}, "
                f"got {f.category!r}: {_clip(f.answer, 100)}"
            )
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, score, print; the exit status says whether the targets are met."""
    parser = argparse.ArgumentParser(
        description="Score a project's risk_flags capability: compliance and category accuracy."
    )
    parser.add_argument("project", type=Path, help="the project folder (or its ragtune.yaml)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--clauses", type=Path, default=None, help=f"clauses JSONL (default: {DEFAULT_CLAUSES})"
    )
    which.add_argument(
        "--eval", action="store_true", help="score the project's risk_flags eval lines instead"
    )
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument("--adapter", default=INSTALLED, help="adapter name (default: the installed)")
    pick.add_argument("--base", action="store_true", help="the base model, no adapter")
    parser.add_argument("--backend", choices=["llama.cpp", "transformers"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for generation")
    parser.add_argument(
        "--no-classifier",
        action="store_true",
        help="leave the category to the model, not to the capability's classifier (classify:)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    from ragtune.cli import quiet_libraries

    quiet_libraries()  # no 'Loading weights' bars between the rows

    try:
        project = load_project(args.project)
        allowed = categories(project)
        if args.eval:
            clauses = load_eval_clauses(project, allowed)
            label = "the project's eval lines"
        else:
            path = args.clauses or DEFAULT_CLAUSES
            clauses = load_clauses(path, allowed)
            label = path.name

        def tick(row: Flagged) -> None:
            mark = "ok" if row.first_ok and row.category_right else "MISS"
            print(
                f"  {mark:4} {row.seconds:5.1f} s  {Path(row.clause.where).name}", file=sys.stderr
            )

        scored = score(
            project,
            clauses,
            adapter=None if args.base else args.adapter,
            backend=args.backend,
            threads=args.threads,
            classifier=not args.no_classifier,
            progress=tick,
        )
    except RagtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(scored.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report(scored, label))
    return 0 if scored.meets_targets else 1


if __name__ == "__main__":
    sys.exit(main())
