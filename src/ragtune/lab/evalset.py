"""Eval sets: JSONL files of requests with the facts a right answer holds.

One object a line::

    {"capability": "templates", "input": "Which law governs the NDA?",
     "expected": ["Delaware"], "answer": "Delaware law governs the NDA (NDA 11.1).",
     "after": {"expected": ["New York"], "answer": "New York law governs the NDA (NDA 11.1)."}}

- ``capability`` (required) names the capability of ``ragtune.yaml`` that serves the request.
- ``input`` (required) is the request: a question, a clause to flag.
- ``expected`` lists facts a right answer contains (scored by :mod:`ragtune.lab.metrics`).
- ``answer`` is a reference answer. The lab's LoRA arms of a knowledge capability are trained
  on the reference answers of the *train* lines of the split (:mod:`ragtune.holdout`;
  fine-tuning the facts in is what they stand for) and scored on every line, the seen and the
  unseen apart; few-shot arms show them as examples.
- ``after`` gives ``expected`` (and ``answer``) once the drift change set has landed: the
  questions whose answers the change revises. Their ``expected`` before the change are the
  stale facts.
- ``rephrased`` lists the same question asked in other words (same ``expected``, ``answer``
  and ``after``). The lab asks an adapter the rephrasings of the lines it trained on, each
  scored as its own item: the adapter saw the fact, not the words (the method of
  FineTuneBench, arXiv 2411.05059).

A line needs ``expected`` or a capability with an output contract, else there is nothing to
score. Errors name the file, the line, the field and the bad value, all of them at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ragtune.errors import RagtuneError, closest
from ragtune.project import Project

__all__ = ["EvalError", "EvalItem", "Revision", "default_eval_paths", "load_eval", "shown_path"]

_FIELDS = ("capability", "input", "expected", "answer", "after", "rephrased")


class EvalError(RagtuneError):
    """An eval set cannot be used; the message names every problem by file and line."""


@dataclass(frozen=True)
class Revision:
    """What a request's right answer is once the drift change set has landed."""

    expected: tuple[str, ...]
    answer: str | None = None


@dataclass(frozen=True)
class EvalItem:
    """One request of an eval set.

    Attributes:
        capability: The capability that serves it.
        input: The request.
        expected: Facts a right answer contains (may be empty for contract-only items).
        answer: The reference answer, when given.
        after: The right answer after the drift change set, for the requests it revises.
        where: ``file:line``, for reports and errors.
        rephrased: The same request in other words.
        original: For a rephrasing (:meth:`rephrasings`), the ``input`` of the line it
            rephrases; None for a line of the file.
    """

    capability: str
    input: str
    expected: tuple[str, ...] = ()
    answer: str | None = None
    after: Revision | None = None
    where: str = ""
    rephrased: tuple[str, ...] = ()
    original: str | None = None

    def rephrasings(self) -> list[EvalItem]:
        """Each rephrasing as an item of its own, scored against this line's facts."""
        return [
            replace(self, input=text, rephrased=(), original=self.input, where=f"{self.where}~{n}")
            for n, text in enumerate(self.rephrased, start=1)
        ]


def default_eval_paths(project: Project) -> list[Path]:
    """The project's eval sets: every ``*.jsonl`` in its ``eval/`` folder, sorted."""
    folder = project.root / "eval"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def load_eval(paths: list[Path], project: Project) -> list[EvalItem]:
    """Read eval sets (files, or folders of ``*.jsonl``) and check them against the project.

    Raises:
        EvalError: No file, or problems in the files: each named by file, line and field.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise EvalError(f"{path}: no such eval file or folder")
    if not files:
        shown = ", ".join(str(p) for p in paths) or str(project.root / "eval")
        raise EvalError(
            f"no eval set found in {shown}: give --eval FILE (JSONL lines with capability, input "
            "and expected facts; see `ragtune lab --help`)"
        )
    capabilities = {c.name: c for c in project.config.capabilities}
    items: list[EvalItem] = []
    problems: list[str] = []
    for file in files:
        shown = shown_path(file, project.root)
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{shown}: cannot be read ({exc})")
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item, found = _parse(line, f"{shown}:{number}", capabilities)
            except RecursionError:  # json and the messages recurse once a level of nesting
                item, found = None, [f"{shown}:{number}: nested too deeply to read"]
            problems.extend(found)
            if item is not None:
                items.append(item)
    if problems:
        raise EvalError(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the eval set:\n  "
            + "\n  ".join(problems[:20])
            + ("" if len(problems) <= 20 else f"\n  ... and {len(problems) - 20} more")
        )
    if not items:
        raise EvalError(f"the eval set in {', '.join(map(str, files))} has no lines")
    return items


def _parse(
    line: str, where: str, capabilities: Mapping[str, object]
) -> tuple[EvalItem | None, list[str]]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, [f"{where}: not JSON ({exc.msg} at column {exc.colno})"]
    if not isinstance(value, dict):
        return None, [f"{where}: expected a JSON object, got {type(value).__name__}"]
    problems = [
        f"{where}: unknown field {key!r}{_did_you_mean(key, _FIELDS)}; fields: "
        + ", ".join(_FIELDS)
        for key in value
        if key not in _FIELDS
    ]
    capability = value.get("capability")
    if not isinstance(capability, str) or not capability:
        problems.append(f"{where}: field 'capability' must name a capability, got {capability!r}")
    elif capability not in capabilities:
        problems.append(
            f"{where}: field 'capability' {capability!r} is not in the project"
            f"{_did_you_mean(capability, list(capabilities))}; capabilities: "
            + ", ".join(capabilities)
        )
    text = value.get("input")
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}: field 'input' must be a non-empty string, got {text!r}")
    expected = _facts(value.get("expected", []), where, "expected", problems)
    answer = value.get("answer")
    if answer is not None and not isinstance(answer, str):
        problems.append(f"{where}: field 'answer' must be a string, got {answer!r}")
    after = _after(value["after"], where, expected, problems) if "after" in value else None
    rephrased = _rephrased(value.get("rephrased", []), where, text, problems)
    cap = capabilities.get(capability) if isinstance(capability, str) else None
    if cap is not None and not expected and not getattr(cap, "output_contract", None):
        problems.append(
            f"{where}: nothing to score: no 'expected' facts, and capability {capability!r} has "
            "no output contract"
        )
    if problems:
        return None, problems
    return (
        EvalItem(
            capability=str(capability),
            input=str(text),
            expected=expected,
            answer=answer if isinstance(answer, str) else None,
            after=after,
            where=where,
            rephrased=rephrased,
        ),
        [],
    )


def _rephrased(raw: object, where: str, text: object, problems: list[str]) -> tuple[str, ...]:
    """A line's ``rephrased`` field: other wordings of its ``input``, none of them the same."""
    if not isinstance(raw, list) or not all(isinstance(r, str) and r.strip() for r in raw):
        problems.append(
            f"{where}: field 'rephrased' must be a list of non-empty strings (the question in "
            f"other words), got {raw!r}"
        )
        return ()
    same = " ".join(str(text).split()).lower() if isinstance(text, str) else None
    seen: set[str] = set()
    for number, wording in enumerate(raw, start=1):
        flat = " ".join(wording.split()).lower()
        if flat == same:
            problems.append(
                f"{where}: field 'rephrased[{number}]' is the 'input' itself; give the question "
                "in other words"
            )
        elif flat in seen:
            problems.append(f"{where}: field 'rephrased[{number}]' repeats an earlier rephrasing")
        seen.add(flat)
    return tuple(r.strip() for r in raw)


def _after(
    raw: object, where: str, expected: tuple[str, ...], problems: list[str]
) -> Revision | None:
    """A line's ``after`` field; its problems go to ``problems``."""
    if not isinstance(raw, dict) or "expected" not in raw:
        problems.append(
            f"{where}: field 'after' must be an object with 'expected' (and 'answer'), got {raw!r}"
        )
        return None
    extra = [k for k in raw if k not in ("expected", "answer")]
    if extra:
        problems.append(f"{where}: field 'after' has unknown keys {extra!r}")
    new = _facts(raw["expected"], where, "after.expected", problems)
    if not new:
        problems.append(f"{where}: field 'after.expected' must list at least one fact")
    new_answer = raw.get("answer")
    if new_answer is not None and not isinstance(new_answer, str):
        problems.append(f"{where}: field 'after.answer' must be a string")
    if not expected:
        problems.append(
            f"{where}: a line with 'after' needs 'expected' (the facts before the "
            "change, which become the stale ones)"
        )
    return Revision(new, new_answer if isinstance(new_answer, str) else None)


def _facts(raw: object, where: str, name: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(f, str) and f.strip() for f in raw):
        problems.append(f"{where}: field {name!r} must be a list of non-empty strings, got {raw!r}")
        return ()
    return tuple(f.strip() for f in raw)


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


def shown_path(path: Path, root: Path) -> str:
    """A path as reports show it: relative to the project root when inside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
