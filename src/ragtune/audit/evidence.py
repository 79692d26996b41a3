"""Measured answers: what the project's own files say, when they are there.

- Sources in a git repository: the commits that changed them in the last 6 and 12 months.
- Volatile content in the sources: money, dates, percentages, version numbers, quarters, "as of".
- Examples: outputs that share one structure (behaviour) against outputs carrying facts absent
  from their inputs (knowledge being taught), and the range of values a field draws on.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ragtune.behavior.leak import inspect_example
from ragtune.knowledge.sources import DOCUMENT_SUFFIXES, TABLE_SUFFIXES, discover

# The text formats among the knowledge sources (a PDF's text needs its parser: not scanned).
TEXT_SUFFIXES = frozenset(
    s for s, kind in DOCUMENT_SUFFIXES.items() if kind in ("markdown", "text", "html")
) | (TABLE_SUFFIXES)
MAX_FILES = 2000
MAX_BYTES_PER_FILE = 2_000_000
MAX_EXAMPLES = 5000
DAY = 86_400.0

_VOLATILE_PATTERNS = {
    "money": re.compile(r"[$€£]\s?\d|\b\d[\d,.]*\s?(usd|eur|gbp|dollars|euros|pounds)\b", re.I),
    "date": re.compile(
        r"\b(19|20)\d\d-\d\d-\d\d\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(jan|feb|mar|apr|may|jun|jul|aug|"
        r"sep|oct|nov|dec)[a-z]*\.? \d{1,2},? (19|20)\d\d\b|\b\d{1,2} (jan|feb|mar|apr|may|jun|"
        r"jul|aug|sep|oct|nov|dec)[a-z]* (19|20)\d\d\b",
        re.I,
    ),
    "percentage": re.compile(r"\b\d+(\.\d+)?\s?(%|percent\b)", re.I),
    "version": re.compile(r"\bv(ersion)?\.?\s?\d+(\.\d+)+\b", re.I),
    "quarter": re.compile(r"\bq[1-4]\b|\b(first|second|third|fourth) quarter\b", re.I),
    "as of": re.compile(r"\bas of\b|\beffective (from|date|as of)?\b", re.I),
}


@dataclass(frozen=True)
class GitChurn:
    """How often the sources changed, from git history."""

    repo: Path
    files: int
    changes_6m: int  # commits that modified or deleted a tracked source in the last 6 months
    changes_12m: int
    history_days: float  # age of the oldest commit touching the sources


@dataclass(frozen=True)
class ContentScan:
    """Volatile facts found in the sources' text."""

    files: int
    words: int
    chars: int
    counts: dict[str, int]

    @property
    def hits(self) -> int:
        """All volatile facts found."""
        return sum(self.counts.values())

    @property
    def per_1k_words(self) -> float:
        """Volatile facts per 1,000 words."""
        return 1000 * self.hits / self.words if self.words else 0.0


@dataclass(frozen=True)
class ExamplesScan:
    """What a set of input/output examples shows about the capability."""

    path: Path
    count: int
    bad_lines: int
    structure: str  # a readable signature of the most common output structure
    structure_share: float
    median_output_words: float
    widest_field: str | None  # the JSON field with the most distinct values
    widest_field_values: int
    leak_share: float  # share of examples whose output carries facts absent from the input
    leak_examples: list[str] = field(default_factory=list)


def source_files(root: Path, sources: list[str]) -> list[Path]:
    """The files a capability's sources name, found as the knowledge sync finds them.

    Folders, files, globs and ``table.csv#column`` references resolve through
    :func:`ragtune.knowledge.sources.discover`, so the audit measures the files the capability
    actually draws on; at most :data:`MAX_FILES` of them.

    Raises:
        SourceError: Two references name different key columns for the same table.
    """
    return discover(root, sources).files[:MAX_FILES]


@lru_cache(maxsize=1)
def _git_available() -> bool:
    try:
        subprocess.run(["git", "--version"], capture_output=True, check=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def git_churn(files: list[Path], now: float | None = None) -> GitChurn | None:
    """Commits that changed ``files`` in the last 6 and 12 months; ``None`` outside git."""
    if not files or not _git_available():
        return None
    now = time.time() if now is None else now
    folder = files[0].parent
    try:
        top = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    repo = Path(top)
    rel = []
    for path in files:
        try:
            rel.append(str(path.resolve().relative_to(repo.resolve())))
        except ValueError:
            continue
    if not rel:
        return None
    try:
        log = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "log",
                "--format=%x00%ct",
                "--name-status",
                "--no-renames",
                "--",
                *rel,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    changes_6m = changes_12m = 0
    oldest: float | None = None
    for block in log.split("\x00")[1:]:
        lines = block.strip().splitlines()
        if not lines:
            continue
        stamp = float(lines[0])
        oldest = stamp if oldest is None else min(oldest, stamp)
        modified = any(line[:1] in ("M", "D") for line in lines[1:])
        age = now - stamp
        if modified and age <= 183 * DAY:
            changes_6m += 1
        if modified and age <= 365 * DAY:
            changes_12m += 1
    if oldest is None:
        return None  # not committed yet: no history to measure
    return GitChurn(
        repo=repo,
        files=len(rel),
        changes_6m=changes_6m,
        changes_12m=changes_12m,
        history_days=(now - oldest) / DAY,
    )


def read_text(path: Path) -> str | None:
    """The text of a source file, or ``None`` when it is not text this scan reads."""
    if path.suffix.lower() not in TEXT_SUFFIXES:
        return None
    try:
        data = path.read_bytes()[:MAX_BYTES_PER_FILE]
    except OSError:
        return None
    if b"\x00" in data[:4096]:
        return None
    return data.decode("utf-8", errors="replace")


def scan_content(files: list[Path]) -> ContentScan:
    """Count volatile facts in the text of the sources."""
    counts: Counter[str] = Counter()
    words = chars = read = 0
    for path in files:
        text = read_text(path)
        if text is None:
            continue
        read += 1
        words += len(text.split())
        chars += len(text)
        for name, pattern in _VOLATILE_PATTERNS.items():
            counts[name] += sum(1 for _ in pattern.finditer(text))
    return ContentScan(files=read, words=words, chars=chars, counts=dict(counts))


def _signature(output: str) -> tuple[str, tuple[str, ...], dict[str, object] | None]:
    text = output.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            return "JSON keys", tuple(obj), obj
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    headings = tuple(line.lstrip("#").strip() for line in lines if line.startswith("#"))
    if headings:
        return "headings", headings, None
    labels = tuple(m.group(1) for line in lines if (m := re.match(r"^([A-Z][\w /-]{0,30}):", line)))
    if labels:
        return "labelled lines", labels, None
    if lines and all(line[:2] in ("- ", "* ") or line[:1].isdigit() for line in lines):
        return "list items", (f"{len(lines)} items",), None
    return "free text", (), None


def scan_examples(path: Path) -> ExamplesScan | None:
    """Read an examples JSONL (tolerating bad lines: the behaviour stage reports them)."""
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError:
        return None
    signatures: Counter[tuple[str, tuple[str, ...]]] = Counter()
    values: dict[str, set[str]] = {}
    lengths: list[int] = []
    leaks: list[str] = []
    count = bad = 0
    with handle:
        for line in handle:
            if not line.strip():
                continue
            if count + bad >= MAX_EXAMPLES:
                break
            try:
                record = json.loads(line)
                source = str(record.get("input", "")) + "\n" + str(record.get("context") or "")
                output = record["output"]
                output = output if isinstance(output, str) else json.dumps(output)
            except (json.JSONDecodeError, AttributeError, KeyError, TypeError, RecursionError):
                bad += 1  # nested past Python's recursion limit counts as bad too
                continue
            count += 1
            kind, shape, obj = _signature(output)
            signatures[(kind, shape)] += 1
            if obj is not None:
                for key, value in obj.items():
                    if isinstance(value, str | int | float | bool):
                        values.setdefault(key, set()).add(str(value))
            lengths.append(len(output.split()))
            # The leak guard's own check, so audit and `adapter train` agree on every example.
            leak = inspect_example(count + bad, source, output)
            if leak is not None and leak.teaches:
                leaks.append(f"{path.name}:{count + bad}: {', '.join(leak.facts[:3])}")
    if count == 0:
        return None
    (kind, shape), top = signatures.most_common(1)[0]
    structure = f"{kind} {', '.join(shape)}" if shape else kind
    widest: tuple[str | None, set[str]] = max(
        values.items(), key=lambda kv: len(kv[1]), default=(None, set())
    )
    return ExamplesScan(
        path=path,
        count=count,
        bad_lines=bad,
        structure=structure,
        structure_share=top / count if kind != "free text" else 0.0,
        median_output_words=statistics.median(lengths),
        widest_field=widest[0],
        widest_field_values=len(widest[1]),
        leak_share=len(leaks) / count,
        leak_examples=leaks[:5],
    )
