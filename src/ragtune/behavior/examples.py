"""Behaviour examples: load a JSONL file of ``{"input", "output"}`` pairs, split it, hash it.

An examples file holds one JSON object a line::

    {"input": "Each party's liability shall not exceed ...", "output": "{\\"risk\\":\\"low\\"}"}
    {"input": "...", "output": {"risk": "high"}, "context": "the clause retrieved with it"}

``input`` and ``output`` are required, ``context`` is optional; blank lines are skipped. An
``output`` written as a JSON object or array (rather than a string holding JSON) is accepted and
serialised compactly, so both spellings train the same adapter.

:func:`load_examples` reads the whole file before it complains: every problem it finds (up to
:data:`MAX_REPORTED_PROBLEMS`) is raised together in one :class:`ExamplesError`, each naming its
line and the bad value, so a user fixes the file in one pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ragtune.errors import RagtuneError, closest

KNOWN_KEYS = ("input", "output", "context")
REQUIRED_KEYS = ("input", "output")

# A held-out split is only worth its name when both sides have something in them: with fewer
# than ten examples, holding out even one leaves a training set too small to learn a format from
# and an evaluation whose single example swings the compliance rate between 0% and 100%. Ten is
# the floor that still lets a small few-shot file (the example's clause summaries) be evaluated.
MIN_EXAMPLES_FOR_SPLIT = 10

# Enough to fix a file in one pass; past this the file is probably not examples JSONL at all.
MAX_REPORTED_PROBLEMS = 20

_EXCERPT = 60
_SURROGATE = re.compile("[\ud800-\udfff]")  # half a UTF-16 pair, as a lone JSON escape gives

_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


@dataclass(frozen=True)
class Example:
    """One input and the output the behaviour should produce for it.

    Attributes:
        input: The request, as the model will see it.
        output: The wanted answer; a JSON object or array in the file arrives here as compact
            JSON text.
        context: Retrieved text served alongside the input, if any (context-aware training).
        line: 1-based line of the example in its file; 0 when it was not read from a file.
        shots: Other examples shown before it in its training prompt (``train.shots``), most
            similar first; not part of the example's JSONL object.
    """

    input: str
    output: str
    context: str | None = None
    line: int = 0
    shots: tuple[Example, ...] = ()

    def to_dict(self) -> dict[str, str]:
        """The example as its JSONL object: ``input``, ``output`` and ``context`` when set."""
        data = {"input": self.input, "output": self.output}
        if self.context is not None:
            data["context"] = self.context
        return data


@dataclass(frozen=True)
class ExampleSet:
    """The examples read from one file.

    Attributes:
        path: The file, as a POSIX path relative to the project root where one was given.
        examples: In file order; never empty.
        sha256: Hex digest of the file's raw bytes (the file changed if and only if it changed).
            :func:`dataset_hash` is the content hash that ignores blank lines and key order.
    """

    path: str
    examples: list[Example]
    sha256: str

    def __len__(self) -> int:
        return len(self.examples)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an examples file: its line (None for the whole file) and why."""

    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line is not None else self.reason


class ExamplesError(RagtuneError):
    """An examples file cannot be used: names the file, the line and the bad value.

    When :func:`load_examples` finds several problems it raises one error holding all of them:
    ``line`` is then None, ``reason`` lists them one a line and ``problems`` has each.

    Attributes:
        path: The file, relative to the project root where known; None when the examples did
            not come from a file.
        line: The 1-based line at fault, or None for a problem with the whole file (or several).
        reason: What is wrong and, where it helps, what would be accepted.
        problems: Every problem found, in line order (one for a single problem).
    """

    def __init__(
        self,
        path: str | Path | None,
        line: int | None,
        reason: str,
        problems: Sequence[Problem] = (),
    ) -> None:
        super().__init__(None if path is None else str(path), line, reason)
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = reason
        self.problems = list(problems) or [Problem(line, reason)]

    def __str__(self) -> str:
        where = ", ".join(
            part for part in (self.path, None if self.line is None else f"line {self.line}") if part
        )
        return f"{where}: {self.reason}" if where else self.reason


def load_examples(path: Path, root: Path | None = None) -> ExampleSet:
    """Read a JSONL examples file.

    Each non-blank line must be a JSON object with a string ``input``, an ``output`` and,
    optionally, a string (or null) ``context``. ``output`` is normally a string; a JSON object or
    array is accepted too and serialised compactly
    (``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``), so it reaches the model
    as the same text a string holding that JSON would. Empty or whitespace-only ``input`` and
    ``output`` are refused: an example that shows nothing teaches nothing.

    Args:
        path: The ``.jsonl`` file.
        root: The project root; error messages and :attr:`ExampleSet.path` name the file
            relative to it. Without it the path is shown as given.

    Returns:
        The examples in file order, with their line numbers and the file's hash.

    Raises:
        ExamplesError: The file cannot be read, is empty, or has bad lines. Every bad line (up
            to :data:`MAX_REPORTED_PROBLEMS`) is reported in the one error, with its line
            number, what is wrong and the bad value.
    """
    shown = _shown_path(path, root)
    data = _read_bytes(path, shown)
    text = _decode(data, shown)

    examples: list[Example] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        example, line_problems = _parse_line(line, number)
        problems.extend(line_problems)
        if example is not None:
            examples.append(example)

    if problems:
        raise _collected(shown, problems)
    if not examples:
        raise ExamplesError(
            shown,
            None,
            'no examples: the file is empty; write one {"input": ..., "output": ...} object a line',
        )
    return ExampleSet(path=shown, examples=examples, sha256=hashlib.sha256(data).hexdigest())


def split(
    examples: ExampleSet | Sequence[Example],
    held_out: float = 0.1,
    seed: int = 0,
    minimum: int = MIN_EXAMPLES_FOR_SPLIT,
) -> tuple[list[Example], list[Example]]:
    """Split examples into a training part and a held-out part with a seeded shuffle.

    The same examples, ``held_out`` and ``seed`` always give the same split; another seed gives
    another. ``round(len(examples) * held_out)`` examples are held out, but at least one, and at
    least one is left to train on. Both parts keep the file order.

    Args:
        examples: An :class:`ExampleSet` (errors then name its file) or a list of examples.
        held_out: The share to hold out for evaluation, strictly between 0 and 1.
        seed: Seeds the shuffle that picks the held-out examples.
        minimum: Fewer examples than this is an error; see :data:`MIN_EXAMPLES_FOR_SPLIT` for
            why the default is what it is.

    Returns:
        ``(train, held_out)``.

    Raises:
        ExamplesError: Fewer than ``minimum`` examples; says how many there are and how many
            are needed.
        ValueError: ``held_out`` is not strictly between 0 and 1, or ``minimum`` is below 2.
    """
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be strictly between 0 and 1, got {held_out!r}")
    if minimum < 2:
        raise ValueError(
            f"minimum must be at least 2 (one to train, one to hold out), got {minimum}"
        )
    path = examples.path if isinstance(examples, ExampleSet) else None
    items = list(examples.examples if isinstance(examples, ExampleSet) else examples)
    if len(items) < minimum:
        raise ExamplesError(
            path,
            None,
            f"too few examples for a held-out split: {len(items)} "
            f"example{'' if len(items) == 1 else 's'}, at least {minimum} needed; "
            f"add {minimum - len(items)} more",
        )
    count = min(len(items) - 1, max(1, round(len(items) * held_out)))
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:count])
    train = [ex for i, ex in enumerate(items) if i not in chosen]
    held = [ex for i, ex in enumerate(items) if i in chosen]
    return train, held


def dataset_hash(examples: ExampleSet | Iterable[Example]) -> str:
    """SHA-256 of the examples' content, for an adapter's manifest.

    Hashes the canonical JSON of the examples in order (keys sorted, compact, UTF-8), without
    their line numbers: blank lines or key order in the file do not change it; editing,
    adding, removing or reordering an example does.

    Args:
        examples: An :class:`ExampleSet` or the examples themselves.

    Returns:
        The hex digest.
    """
    items = examples.examples if isinstance(examples, ExampleSet) else examples
    canonical = json.dumps(
        [ex.to_dict() for ex in items], ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _parse_line(line: str, number: int) -> tuple[Example | None, list[Problem]]:
    """Parse one non-blank line into an example, or say everything wrong with it."""
    try:
        return _read_line(line, number)
    except RecursionError:  # json and the messages recurse once a level of nesting
        return None, [
            Problem(
                number,
                "nested too deeply to read (near Python's limit of "
                f"{sys.getrecursionlimit():,} levels); an example needs a few",
            )
        ]


def _read_line(line: str, number: int) -> tuple[Example | None, list[Problem]]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        near = line[max(0, exc.colno - 1 - _EXCERPT // 2) :][:_EXCERPT]
        return None, [
            Problem(number, f"invalid JSON at column {exc.colno} ({exc.msg}) near {near!r}")
        ]
    if not isinstance(value, dict):
        return None, [
            Problem(
                number,
                f'expected a JSON object like {{"input": ..., "output": ...}}, found '
                f"{_json_type(value)} {_excerpt(value)}",
            )
        ]

    problems: list[Problem] = []
    suggested: set[str] = set()
    for key in value:
        if key in KNOWN_KEYS:
            continue
        close = closest(key.lower(), KNOWN_KEYS)
        hint = f"did you mean `{close}`? " if close else ""
        if close:
            suggested.add(close)
        problems.append(
            Problem(
                number,
                f"unknown key `{key}` ({hint}accepted keys: {', '.join(KNOWN_KEYS)})",
            )
        )
    for key in REQUIRED_KEYS:
        # A misspelt required key was already reported with its correction; once is enough.
        if key not in value and key not in suggested:
            problems.append(Problem(number, f"missing `{key}`: each line needs input and output"))

    input_ = _text_field(value, "input", number, problems)
    output = _output_field(value, number, problems)
    context = value.get("context")
    if context is not None and not isinstance(context, str):
        problems.append(
            Problem(
                number,
                f"`context` must be a string or null, found {_json_type(context)} "
                f"{_excerpt(context)}",
            )
        )
    for key, text in (("input", input_), ("output", output), ("context", context)):
        surrogate = _SURROGATE.search(text) if isinstance(text, str) else None
        if surrogate is not None:
            problems.append(
                Problem(
                    number,
                    f"`{key}` holds a lone surrogate \\u{ord(surrogate.group()):04x} at character "
                    f"{surrogate.start()}, which is not text; write the character itself or a "
                    "valid pair",
                )
            )
    if problems or input_ is None or output is None:
        return None, problems
    return Example(input=input_, output=output, context=context, line=number), []


def _text_field(
    value: dict[str, object], key: str, number: int, problems: list[Problem]
) -> str | None:
    """The string under ``key``, or None (with a problem recorded unless the key is missing)."""
    if key not in value:
        return None
    field = value[key]
    if not isinstance(field, str):
        problems.append(
            Problem(
                number, f"`{key}` must be a string, found {_json_type(field)} {_excerpt(field)}"
            )
        )
        return None
    if not field.strip():
        problems.append(Problem(number, f"`{key}` is empty"))
        return None
    return field


def _output_field(value: dict[str, object], number: int, problems: list[Problem]) -> str | None:
    """``output`` as text: a string as it is, an object or array as compact JSON."""
    field = value.get("output")
    if isinstance(field, dict | list):
        return json.dumps(field, ensure_ascii=False, separators=(",", ":"))
    if "output" in value and not isinstance(field, str):
        problems.append(
            Problem(
                number,
                f"`output` must be a string, a JSON object or an array, found "
                f"{_json_type(field)} {_excerpt(field)}",
            )
        )
        return None
    return _text_field(value, "output", number, problems)


def _collected(shown: str, problems: list[Problem]) -> ExamplesError:
    """One error for everything found: the problem itself when there is one, else a list."""
    if len(problems) == 1:
        return ExamplesError(shown, problems[0].line, problems[0].reason)
    listed = problems[:MAX_REPORTED_PROBLEMS]
    lines = len({p.line for p in problems})
    more = len(problems) - len(listed)
    reason = (
        f"{len(problems)} problems on {lines} line{'' if lines == 1 else 's'}; "
        "fix them all, then run again:\n" + "\n".join(f"  {p}" for p in listed)
    )
    if more:
        reason += f"\n  ... and {more} more"
    return ExamplesError(shown, None, reason, problems=problems)


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _excerpt(value: object) -> str:
    """The value as JSON, cut short for an error message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def _shown_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` as POSIX text, or as given when there is no root."""
    if root is None:
        return Path(path).as_posix()
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _read_bytes(path: Path, shown: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ExamplesError(shown, None, "examples file not found") from None
    except IsADirectoryError:
        raise ExamplesError(shown, None, "is a folder, not an examples file") from None
    except OSError as exc:
        raise ExamplesError(shown, None, f"cannot be read ({exc.strerror or exc})") from None


def _decode(data: bytes, shown: str) -> str:
    """UTF-8 (a BOM tolerated); a bad byte is reported with its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ExamplesError(
            shown,
            line,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8",
        ) from None
