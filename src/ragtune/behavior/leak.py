"""The knowledge-leak guard: keep facts out of an adapter's training data.

An adapter should learn how to answer, not what is true today. Before training, every example
output is checked for what its input (and retrieved context) does not give it:

- facts: money amounts, dates, percentages, version numbers and other figures
  (:func:`ragtune.facts.novel_facts`);
- passages of the knowledge index: a run of :data:`INDEX_RUN_WORDS` consecutive words of the
  output found in a knowledge chunk and not in the input or context;
- names (:func:`ragtune.facts.novel_names`): the weakest signal, reported apart and not counted
  in the share.

The share of examples that leak is compared with a threshold; above it, training would teach
those facts, and they belong in retrieval instead. Plain ``re``: no torch here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from ragtune.facts import novel_facts, novel_names

__all__ = [
    "DEFAULT_THRESHOLD",
    "INDEX_RUN_WORDS",
    "Leak",
    "LeakReport",
    "index_matches",
    "inspect_example",
    "output_text",
    "scan_examples",
]

DEFAULT_THRESHOLD = 0.1
"""Share of examples that may leak before training is refused.

A few outputs that quote a figure by accident (a clause's own amount restated, a date the
annotator knew) teach the adapter little; past one example in ten the dataset is teaching facts,
and those facts go stale inside the weights when the knowledge changes.
"""

INDEX_RUN_WORDS = 8
"""Consecutive words an output must share with a knowledge chunk to count as quoting it.

Eight words rarely repeat by chance in prose, yet a quoted sentence of the knowledge nearly always
holds that many.
"""

INDEX_KIND = "index"
"""The key under which :attr:`LeakReport.facts_by_kind` counts passages of the knowledge index."""

_MAX_SHOWN = 80

Knowledge = Callable[[str], Sequence[str]]
"""Given an output's text (:func:`output_text`), the texts of chunks that might hold it."""


@dataclass
class Leak:
    """One example whose output says more than its input.

    Attributes:
        line: The example's line in its file.
        input: The example's input.
        output: The example's output.
        facts: Facts in the output absent from the input and context, each labelled by kind
            ("money: $50,000", "date: 1 July 2026").
        index_matches: Passages of the output found in the knowledge index and not in the
            input or context (runs of at least :data:`INDEX_RUN_WORDS` words).
        names: Names in the output absent from the input and context; weaker than the rest.
    """

    line: int
    input: str
    output: str
    facts: list[str]
    index_matches: list[str]
    names: list[str] = field(default_factory=list)

    @property
    def teaches(self) -> bool:
        """Whether the output carries facts or index text (names alone do not count)."""
        return bool(self.facts or self.index_matches)

    def describe(self) -> str:
        """One line: what the output says that the input does not."""
        parts = list(self.facts)
        parts += [f'knowledge index: "{_clip(match)}"' for match in self.index_matches]
        parts += [f"name: {name}" for name in self.names]
        return "; ".join(parts)


@dataclass
class LeakReport:
    """What the leak guard found in one examples file.

    Attributes:
        path: The examples file, as shown to the user.
        total: Examples scanned.
        leaking: Examples whose outputs carry facts or knowledge-index text absent from their
            inputs; these make up :attr:`share`.
        share: ``len(leaking) / total`` (0.0 for no examples).
        threshold: The share above which training is refused.
        facts_by_kind: Over ``leaking``: facts found by kind ("money", "date", ...) and
            knowledge-index passages under ``"index"``.
        named: Examples whose only finding is names: reported, not counted in the share.
    """

    path: str
    total: int
    leaking: list[Leak]
    share: float
    threshold: float
    facts_by_kind: dict[str, int]
    named: list[Leak] = field(default_factory=list)

    @property
    def exceeds(self) -> bool:
        """Whether the share of leaking examples is above the threshold."""
        return self.share > self.threshold

    @property
    def names_by_count(self) -> dict[str, int]:
        """Names absent from their inputs, over all examples, with how many outputs use each."""
        counts: Counter[str] = Counter()
        for leak in [*self.leaking, *self.named]:
            counts.update(leak.names)
        return dict(counts.most_common())

    def summary(self) -> str:
        """A few sentences for the user: the share, the verdict and what to do."""
        name = PurePath(self.path).name or self.path
        limit = f"{self.threshold:.0%} threshold"
        if not self.leaking:
            text = f"No example output in {name} carries facts absent from its input."
        else:
            kinds = ", ".join(f"{kind} {n}" for kind, n in self.facts_by_kind.items())
            lines = ", ".join(str(leak.line) for leak in self.leaking[:5])
            more = ", ..." if len(self.leaking) > 5 else ""
            text = (
                f"{len(self.leaking)} of {self.total} example outputs in {name} "
                f"({self.share:.0%}) carry facts absent from their inputs ({kinds}; "
                f"lines {lines}{more})."
            )
            if self.exceeds:
                text += (
                    f" That is above the {limit}: training on them would bake these facts "
                    "into the adapter, where they go stale. Move those facts to retrieval "
                    "(a knowledge source), keep the examples about format and style, or "
                    "pass --allow-knowledge to train anyway."
                )
            else:
                text += (
                    f" That is within the {limit}; still, move those facts to retrieval so "
                    "the adapter learns only behaviour."
                )
        names = self.names_by_count
        if names:
            shown = ", ".join(list(names)[:3]) + (", ..." if len(names) > 3 else "")
            text += (
                f" {len(names)} names appear in outputs but not in their inputs ({shown}): "
                "a weaker signal, worth a look."
            )
        return text

    def details(self, limit: int = 10) -> list[str]:
        """``path:line: findings`` for the first ``limit`` leaking examples."""
        return [f"{self.path}:{leak.line}: {leak.describe()}" for leak in self.leaking[:limit]]


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _leaves(value: object) -> Iterable[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def output_text(output: str) -> str:
    """The text of an output to scan: a JSON output's values one a line, else the output.

    JSON keys are structure, not content; and one value a line lets the name finder treat
    each value as its own sentence (a title-case label such as a category is skipped).
    """
    stripped = output.strip()
    if stripped[:1] in ("{", "["):
        try:
            return "\n".join(_leaves(json.loads(stripped)))
        except (json.JSONDecodeError, RecursionError):  # nested past the stack: scan as text
            pass
    return output


def _words(text: str) -> list[str]:
    """Lowercased words, punctuation stripped: what the index rule compares."""
    return re.findall(r"\w+", text.lower())


def _runs(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def index_matches(output: str, source: str, chunks: Iterable[str]) -> list[str]:
    """Passages of ``output`` found in one of ``chunks`` and not in ``source``.

    A passage is a maximal stretch of the output covered by runs of :data:`INDEX_RUN_WORDS`
    consecutive words that a chunk holds and the source (input and context) does not; words
    are compared lowercased with punctuation stripped.
    """
    n = INDEX_RUN_WORDS
    words = _words(output)
    if len(words) < n:
        return []
    given = _runs(_words(source), n)
    covered = [False] * len(words)
    for chunk in chunks:
        known = _runs(_words(chunk), n) - given
        if not known:
            continue
        for i in range(len(words) - n + 1):
            if tuple(words[i : i + n]) in known:
                covered[i : i + n] = [True] * n
    passages: list[str] = []
    start: int | None = None
    for i, hit in enumerate([*covered, False]):
        if hit and start is None:
            start = i
        elif not hit and start is not None:
            passages.append(" ".join(words[start:i]))
            start = None
    return passages


def inspect_example(
    line: int,
    input: str,
    output: str,
    context: str | None = None,
    *,
    knowledge: Knowledge | None = None,
) -> Leak | None:
    """What one example's output says that its input and context do not; ``None`` if nothing.

    Args:
        line: The example's line in its file.
        input: The example's input.
        output: The example's output (JSON outputs are read value by value).
        context: Retrieved context served with the input, if any.
        knowledge: Optional lookup from an output to the texts of knowledge chunks it may
            quote; without it, only facts and names are checked.

    Returns:
        A :class:`Leak` with the findings, or ``None`` when the output adds nothing.
    """
    source = input if context is None else f"{input}\n{context}"
    text = output_text(output)
    facts = [str(fact) for fact in novel_facts(text, source)]
    matches = index_matches(text, source, knowledge(text)) if knowledge is not None else []
    names = novel_names(text, source)
    if not (facts or matches or names):
        return None
    return Leak(line, input, output, facts, matches, names)


def scan_examples(
    examples: Sequence[tuple[int, str, str, str | None]],
    *,
    path: str,
    threshold: float = DEFAULT_THRESHOLD,
    knowledge: Knowledge | None = None,
) -> LeakReport:
    """Scan example outputs for knowledge their inputs do not give them.

    Args:
        examples: ``(line, input, output, context)`` for each example; ``context`` may be
            ``None``.
        path: The examples file, for the report.
        threshold: The share of leaking examples above which :attr:`LeakReport.exceeds` is
            true (default :data:`DEFAULT_THRESHOLD`).
        knowledge: Optional lookup from an output's text (:func:`output_text`) to the texts
            of knowledge-index chunks it may quote (for instance a search of the knowledge
            store, top few hits); an output quoting
            :data:`INDEX_RUN_WORDS` consecutive words of one that its input and context do not
            hold counts as leaking.

    Returns:
        The :class:`LeakReport`.

    Raises:
        ValueError: ``threshold`` is not between 0 and 1.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"leak threshold must be a share between 0 and 1 (0.1 = 10%), got {threshold!r}"
        )
    leaking: list[Leak] = []
    named: list[Leak] = []
    kinds: Counter[str] = Counter()
    for line, input, output, context in examples:
        leak = inspect_example(line, input, output, context, knowledge=knowledge)
        if leak is None:
            continue
        if not leak.teaches:
            named.append(leak)
            continue
        leaking.append(leak)
        kinds.update(fact.split(":", 1)[0] for fact in leak.facts)
        kinds[INDEX_KIND] += len(leak.index_matches)
    total = len(examples)
    return LeakReport(
        path=path,
        total=total,
        leaking=leaking,
        share=len(leaking) / total if total else 0.0,
        threshold=threshold,
        facts_by_kind={kind: n for kind, n in kinds.most_common() if n},
        named=named,
    )
