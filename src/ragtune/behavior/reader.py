"""A knowledge capability's reader adapter: answering from retrieved passages, in weights.

Knowledge stays in the index; *reading* it - finding the passage that answers, copying its
figure exactly, citing it, answering the way the team does - is a behaviour, and a small model
does it badly unaided. A knowledge capability with ``reader:`` in ragtune.yaml gets an adapter
(named after the capability) trained on question/answer pairs with retrieved context among
distractors (RAFT, :mod:`ragtune.behavior.raft`), and served with retrieval.

Where the pairs come from (:func:`reader_pairs`):

- **the team's own**: eval lines of the capability with an ``answer`` (``reader.questions``,
  default every ``eval/*.jsonl``), the *train* side of the split only (:mod:`ragtune.holdout`):
  the held-out side is only ever scored, by the lab;
- **made from the documents** (``reader.from_documents``, on by default): each numbered clause
  of the capability's live documents under a heading becomes a question on its topic, answered
  with the clause's sentences that hold a figure, date or duration (its first sentence when it
  states none: :func:`ragtune.knowledge.clauses.clause_answer`) and a citation. It is asked as
  a user would ("How many days does our NDA give for return and destruction?"); where its topic
  has several clauses in the document, with the clause's own rarest words, never its number. The
  documents take turns, so a limit leaves
  none out, and clauses with a figure come first. They teach where to look and to copy, not
  what the facts are: each is trained with its clause in the context, and the answer is worth
  only what the clause says.

In each training prompt the relevant passage is the retrieved hit that states most of the
answer's figures, then shares most of its words (the top hit when none is close), kept in 80% of
prompts; the rest are distractors, as at serving time, where as many passages are served.

What makes a reader stale (:func:`reader_changes`) is behaviour only: the team's pairs, the base
model, the settings. A knowledge change never does - the reader reads the current text - and
the plan says so.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from ragtune.behavior.examples import Example, ExampleSet
from ragtune.context import PASSAGES, Passage
from ragtune.facts import content_words, stated_figures
from ragtune.holdout import split
from ragtune.knowledge.clauses import COUNT, clause_answer, clauses, figure_sentences
from ragtune.project import Capability, Project, ReaderSettings
from ragtune.prompt import KNOWLEDGE_SYSTEM

if TYPE_CHECKING:
    from ragtune.adapters import TrainConfig
    from ragtune.behavior.capability import CapabilityTraining
    from ragtune.behavior.train import ProgressCallback
    from ragtune.knowledge.store import ChunkRow
    from ragtune.lab.evalset import EvalItem

__all__ = [
    "READER_DEFAULTS",
    "ReaderPairs",
    "document_pairs",
    "question_split",
    "reader_config",
    "reader_pairs",
    "relevant_hit",
    "team_pairs",
    "train_reader",
]

READER_DEFAULTS: dict[str, Any] = {
    "r": 16,
    "alpha": 32,
    "learning_rate": 1e-3,
    "epochs": 3,
    "batch_size": 4,
    "max_length": 768,
    "held_out": 0.0,  # the eval split holds out; the lab scores
    "eval_max_new_tokens": 0,
    "context_passages": PASSAGES,
    "context_chars": 480,
    "context_order": "reranked",
    "context_counterfactual": 0.5,
}
"""The reader's training settings unless ``reader.train`` says otherwise: a short run over a
few dozen pairs with as many passages of context as the runtime serves, in the order it serves
them (by their clause closest to the question, best first)."""

_ABBREVIATION = re.compile(r"\(\s*the\s+\"([A-Z]{2,8})\"\s*\)")
_CLAUSE_HEAD = re.compile(r"^\s*\d{1,3}\.\d")
_HEADING_NUMBER = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?|[A-Z]\.)\s+")
_WORD = re.compile(r"[A-Za-z]{4,}")
_SHARED_WORDS = 0.5
_NUMBER_WORD = re.compile(
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety|hundred|thousand|million|billion|percent)(?:-\w+)?",
    re.IGNORECASE,
)
_KEY_WORDS = 3
"""Words a question borrows from its clause where the clause shares its heading with others."""
_TOPIC_QUESTIONS = (
    "What does our {doc} say about {topic}?",
    "What is the position in our {doc} on {topic}?",
    "Under the {doc}, what applies to {topic}?",
)


@dataclass(frozen=True)
class ReaderPairs:
    """The reader's training pairs and where they came from.

    Attributes:
        examples: The pairs (``examples.sha256`` hashes the team's pairs and the settings that
            make the rest: what the plan compares; the documents' pairs are left out of it, so
            a knowledge change never makes the reader stale).
        team: Pairs from the eval lines' train side.
        held_out: Eval lines with an answer kept out (the lab scores them).
        generated: Pairs made from the documents.
        files: The eval files read, relative to the project.
        synced: Whether the knowledge store had been synced (no documents to read before).
    """

    examples: ExampleSet
    team: int
    held_out: int
    generated: int
    files: list[str]
    synced: bool = True


def reader_config(project: Project, capability: Capability) -> TrainConfig:
    """The reader's settings: :data:`READER_DEFAULTS` under ``reader.train``, with the system
    prompt the capability is served with (its ``instructions`` or the knowledge default)."""
    from ragtune.adapters import TrainConfig

    settings = {**READER_DEFAULTS, **(capability.reader.train if capability.reader else {})}
    settings.setdefault("system_prompt", capability.instructions or KNOWLEDGE_SYSTEM)
    return TrainConfig(**settings)


def question_split(
    project: Project, capability: Capability
) -> tuple[list[EvalItem], list[EvalItem], list[str]]:
    """The capability's eval lines split as its reader splits them: ``(train, held out,
    files)``, read from ``reader.questions`` (default: every eval file) and split by
    ``reader.split_seed`` (a capability without a reader: the defaults)."""
    from ragtune.lab.evalset import default_eval_paths, load_eval, shown_path

    reader = capability.reader or ReaderSettings()
    paths = (
        [project.resolve(p) for p in reader.questions]
        if reader.questions is not None
        else default_eval_paths(project)
    )
    files = [shown_path(p, project.root) for p in paths]
    items = [i for i in load_eval(paths, project) if i.capability == capability.name]
    train, held = split(items, lambda i: i.input, seed=reader.split_seed)
    return train, held, files


def team_pairs(project: Project, capability: Capability) -> tuple[list[Example], int, list[str]]:
    """The train side of the capability's eval lines with an answer (:func:`question_split`):
    ``(pairs, held-out lines with an answer, files)``."""
    train, held, files = question_split(project, capability)
    answered = [i for i in train if i.answer]
    rows = [Example(i.input, i.answer or "", None, n) for n, i in enumerate(answered, start=1)]
    return rows, sum(1 for i in held if i.answer), files


def document_pairs(chunks: Iterable[ChunkRow], limit: int) -> list[Example]:
    """Question/answer pairs from the numbered clauses of ``chunks`` under a heading, at most
    ``limit``: those that state a figure, date or duration first, the documents taking turns
    and, within one, its topics (the first clause of each heading before any second one); in
    document order."""
    by_document: dict[str, list[ChunkRow]] = {}
    for chunk in chunks:
        by_document.setdefault(chunk.document, []).append(chunk)
    made: list[list[tuple[bool, int, tuple[str, int, int], Example]]] = []
    for document in sorted(by_document):
        parts = sorted(by_document[document], key=lambda c: c.ordinal)
        name = _short_name(document, parts)
        numbered = [
            (chunk.ordinal, n, topic, number, body)
            for chunk in parts
            if (topic := _topic(chunk.section))
            for n, (number, body) in enumerate(clauses(chunk.text))
        ]
        shared = Counter(topic for *_, topic, _, _ in numbered)
        spread = Counter(w for *_, body in numbered for w in content_words(body))
        seen: Counter[str] = Counter()
        rows = []
        for ordinal, n, topic, number, body in numbered:
            seen[topic] += 1
            figure = figure_sentences(body)
            answer = figure or clause_answer(body)
            if not answer:
                continue
            about = topic
            if shared[topic] > 1:  # the clause's own words tell it from its neighbours
                about = f"{topic} ({', '.join(_key_words(answer, spread, topic, name))})"
            question = _question(name, about, answer)
            pair = Example(question, f"{answer} ({name} {number}).", None, 0)
            rows.append((figure is not None, seen[topic], (document, ordinal, n), pair))
        made.append(sorted(rows, key=lambda row: row[1]))  # the topics take turns
    chosen: list[tuple[tuple[str, int, int], Example]] = []
    for with_figure in (True, False):
        queues = [[(at, e) for f, _, at, e in rows if f == with_figure] for rows in made]
        for turn in zip_longest(*queues):
            chosen += [row for row in turn if row is not None][: limit - len(chosen)]
    return _numbered([e for _, e in sorted(chosen, key=lambda row: row[0])])


def _question(name: str, about: str, answer: str) -> str:
    """A question on one clause: "how many <unit>" when its first figure is a count of days,
    hours, years..., else one of :data:`_TOPIC_QUESTIONS` (chosen by what it is about, so the
    same clause always gets the same question). ``about``: the clause's topic, with its
    distinctive words where other clauses share the topic (:func:`_key_words`)."""
    count = COUNT.search(answer)
    unit = count.group(1) if count and count.group(1) else None
    if unit and not unit.startswith(("%", "percent")):
        plural = unit.lower() if unit.lower().endswith("s") else unit.lower() + "s"
        return f"How many {plural} does our {name} give for {about}?"
    pick = int(hashlib.sha1(about.encode()).hexdigest(), 16) % len(_TOPIC_QUESTIONS)
    return _TOPIC_QUESTIONS[pick].format(doc=name, topic=about)


def _key_words(answer: str, spread: Counter[str], topic: str, name: str) -> list[str]:
    """The :data:`_KEY_WORDS` words of a clause's answer found in the fewest clauses of its
    document (the earliest on a tie), in the answer's order: what a user asking about this
    clause, not its neighbours, would say. Figures and their units, and the words of the topic
    and the document's name, are left out (the question must not hold its answer)."""
    taken = content_words(topic) | content_words(name) | {u.lower() for u in COUNT.findall(answer)}
    taken |= {u.lower().removesuffix("s") for u in taken} | {u.lower() + "s" for u in taken}
    words: list[str] = []
    for word in _WORD.findall(answer):
        low = word.lower()
        if low not in taken and low not in words and not _NUMBER_WORD.fullmatch(low):
            words.append(low)
    rare = sorted(range(len(words)), key=lambda i: (spread[words[i]], i))[:_KEY_WORDS]
    return [words[i] for i in sorted(rare)]


def _numbered(rows: list[Example]) -> list[Example]:
    return [replace(r, line=n) for n, r in enumerate(rows, start=1)]


def _short_name(document: str, chunks: Sequence[ChunkRow]) -> str:
    """What the team calls a document: the abbreviation it defines (``(the "DPA")``), else the
    shortest acronym of its title (``NDA`` for "Mutual Non-Disclosure Agreement"), else its
    title, else its file name."""
    from ragtune.knowledge.search import short_title

    head = " ".join(c.text for c in chunks[:2])
    if found := _ABBREVIATION.search(head):
        return found.group(1)
    return short_title(chunks[0].title.strip() if chunks else "", document)


def _topic(section: str) -> str:
    """The innermost heading of a section path that is not a clause's own opening words
    (``DPA > 6. Personal Data Breach > 6.1 Provider shall`` gives ``personal data breach``),
    without its number, in lower case; empty for a document's preamble."""
    for part in reversed(section.split(" > ")[1:]):
        if not _CLAUSE_HEAD.match(part):
            return _HEADING_NUMBER.sub("", part).strip().rstrip(".").lower()
    return ""


def relevant_hit(example: Example, hits: Sequence[Passage]) -> int:
    """The hit the answer was read from: the one that states most of the answer's figures, then
    shares most of its words (the first on a tie); 0, the top hit, when none states a figure of
    it and none shares at least :data:`_SHARED_WORDS` of its words."""
    if not hits:
        return 0
    wanted = stated_figures(example.output)
    words = content_words(example.output)

    def score(i: int) -> tuple[int, float, int]:
        text = hits[i].text
        shared = len(words & content_words(text)) / len(words) if words else 0.0
        return (len(wanted & stated_figures(text)), shared, -i)

    best = max(range(len(hits)), key=score)
    figures, shared, _ = score(best)
    return best if figures or shared >= _SHARED_WORDS else 0


def reader_pairs(project: Project, capability: Capability) -> ReaderPairs:
    """The reader's pairs: the team's (train side) and, when asked, those made from the
    capability's live documents (none before the knowledge store is synced).

    Raises:
        RagtuneError: No pairs at all in a synced project, naming where they would come from.
    """
    from ragtune.errors import RagtuneError

    reader = capability.reader
    assert reader is not None
    team, held, files = team_pairs(project, capability)
    made: list[Example] = []
    chunks = _live_chunks(project, capability.name)
    if reader.from_documents and reader.max_generated:
        made = document_pairs(chunks or [], reader.max_generated)
    if not team and not made and chunks is not None:
        raise RagtuneError(
            f"capability {capability.name!r} has a reader but nothing to train it on: add eval "
            "lines with an `answer` for it (eval/*.jsonl), or let it make pairs from its "
            "documents (reader.from_documents, after `ragtune knowledge sync`)."
        )
    digest = hashlib.sha256(
        "\n".join(
            [f"{reader.from_documents}:{reader.max_generated}:{reader.split_seed}"]
            + [e.input + "\x00" + e.output for e in team]
        ).encode()
    ).hexdigest()
    offset = len(team)
    rows = team + [replace(e, line=e.line + offset) for e in made]
    return ReaderPairs(
        ExampleSet(f"reader:{capability.name}", rows, digest),
        len(team),
        held,
        len(made),
        files,
        synced=chunks is not None,
    )


def _live_chunks(project: Project, capability: str) -> list[ChunkRow] | None:
    """The capability's live chunks; None when the store was never synced."""
    from ragtune.knowledge.sync import synced_store

    store = synced_store(project)
    if store is None:
        return None
    try:
        return [c for doc in sorted(store.paths_of(capability)) for c in store.current_chunks(doc)]
    finally:
        store.close()


def train_reader(
    project: Project,
    capability: Capability,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> CapabilityTraining:
    """Train a knowledge capability's reader into ``.ragtune/adapters/<capability>``.

    Raises:
        BuildError: The knowledge store was never synced (the reader trains on retrieved
            context), or there are no pairs.
    """
    from ragtune.behavior.capability import BuildError, CapabilityTraining, train_into_project
    from ragtune.behavior.raft import ContextSettings, add_context
    from ragtune.knowledge.base import KnowledgeBase

    kb = KnowledgeBase(project)
    try:
        if kb.store.latest_snapshot() == 0:
            raise BuildError(
                f"capability {capability.name!r} has a reader, which trains on retrieved "
                "passages, but the knowledge store is empty: run `ragtune knowledge sync` first."
            )
        pairs = reader_pairs(project, capability)

        settings = ContextSettings.of(config)

        def retrieve(query: str, k: int) -> list[Passage]:
            return kb.passages(query, k, [capability.name], settings.order)

        examples, context = add_context(
            pairs.examples,
            retrieve,
            settings,
            capabilities=[capability.name],
            snapshot=kb.store.latest_snapshot(),
            seed=config.seed,
            pick=relevant_hit,
        )
    finally:
        kb.close()
    result = train_into_project(
        project, capability.name, examples, config, None, context, progress, resume=resume
    )
    return CapabilityTraining(capability.name, None, result, context)
