"""Bad input, property-based: whatever a user or a client hands ragtune, it answers with one of
its own errors naming the input, never another traceback and never a hang.

Covered: the ``ragtune.yaml`` loader (any text, any structure, any nesting, YAML tags), the JSONL
readers (examples and eval sets, and the audit's tolerant scan), the chunker, the document
loaders (Markdown, text, HTML, PDF, CSV) and the path checks (``knowledge/sources.py`` and the
server's :func:`resolve_document`). Every crash these found is pinned by an ``@example``.

Each example runs under :func:`bounded`, an alarm that turns a hang into a failure with the
input; Hypothesis' deadline flags an example that is merely slow. ``RAGTUNE_PROPERTIES=thorough``
runs ten times the examples, ``RAGTUNE_PROPERTIES=search`` leaves the pinned inputs out (what the
search finds alone); ``--hypothesis-show-statistics`` prints how many examples each test ran.
"""

from __future__ import annotations

import json
import os
import signal
import string
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from ragtune.behavior.examples import ExamplesError, dataset_hash, load_examples
from ragtune.errors import ProjectError
from ragtune.knowledge.chunk import chunk_document, chunk_table
from ragtune.knowledge.parse import Block, ParsedDocument, parse_document
from ragtune.knowledge.sources import (
    SourceError,
    covers,
    discover,
    glob_match,
    source_folder,
    split_ref,
)
from ragtune.knowledge.tables import load_table
from ragtune.project import load_project

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
PROFILES = {
    # CI: the whole file in well under 30 s on two busy cores.
    "quick": settings(max_examples=60, deadline=timedelta(seconds=3), suppress_health_check=_QUIET),
    # The figures in the report: ten times the examples.
    "thorough": settings(
        max_examples=600, deadline=timedelta(seconds=5), suppress_health_check=_QUIET
    ),
    # Generated inputs only, the pinned @example inputs left out: what the search finds alone.
    "search": settings(
        max_examples=300,
        deadline=timedelta(seconds=5),
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=_QUIET,
    ),
}
PROFILE = PROFILES[os.environ.get("RAGTUNE_PROPERTIES", "quick")]


def budget(share: float = 1.0) -> settings:
    """The profile's settings with ``share`` of its examples (slow inputs run fewer)."""
    return settings(PROFILE, max_examples=max(5, int(PROFILE.max_examples * share)))


HANG_S = 20  # far above any example's normal time: past it, the input is a hang


class Hang(Exception):
    """An example ran past :data:`HANG_S`."""


@contextmanager
def bounded(seconds: float = HANG_S) -> Iterator[None]:
    """Fail (with the input, which Hypothesis then shrinks) instead of hanging."""

    def ring(signum: int, frame: object) -> None:
        raise Hang(f"no answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per module: a property writes its file here, example after example."""
    return tmp_path_factory.mktemp("bad-input")


# -- values --------------------------------------------------------------------------------------

# Names that reach code paths: known fields, near misses, YAML's special words, odd characters.
NAMES = st.one_of(
    st.sampled_from(
        [
            "version", "project", "capabilities", "name", "description", "sources", "examples",
            "output_contract", "train", "reader", "knowledge", "model", "prices", "kind",
            "context_from", "chunk_tokens", "max_chunk_tokens", "max_document_mb", "embedder",
            "horizon_months", "calls_per_month", "r", "epochs", "questions", "input", "output",
            "context", "capability", "expected", "answer", "after", "rephrased", "<<", "~",
            "null", "yes", "", " ", "a" * 300,
        ]
    ),
    st.text(max_size=12),
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["knowledge/", "/etc/*", "../x", "a\x00b", "a" * 300, "**", "tool:x.py:f"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=12,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=10,
)
TAGS = [
    "!!int", "!!float", "!!bool", "!!null", "!!str", "!!timestamp", "!!binary", "!!set",
    "!!omap", "!!pairs", "!!seq", "!!map", "!!merge", "!!python/object:os.system", "!custom",
]  # fmt: skip
SCALAR_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-:._+ =", max_size=20)


def nested(opening: str, closing: str, depth: int) -> str:
    return opening * depth + closing * depth


# -- ragtune.yaml --------------------------------------------------------------------------------

BASE_PROJECT: dict[str, Any] = {
    "version": 1,
    "project": "props",
    "capabilities": [{"name": "terms", "description": "answers about the terms"}],
}


def load_text(folder: Path, text: str) -> None:
    """Write ``text`` as ragtune.yaml and load it: a project, or a ProjectError naming it."""
    path = folder / "ragtune.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        with bounded():
            load_project(path)
    except ProjectError as exc:
        assert "ragtune.yaml" in str(exc), str(exc)


@budget()
@given(text=st.text(max_size=300))
@example(text="horizon_months: !!int abc\nversion: 1\n")
@example(text="version: 2024-02-30\n")
@example(text="version: !!float abc\n")
@example(text="version: " + "9" * 5000 + "\n")
@example(text="version: 1\nprices: " + nested("[", "]", 4000))
@example(text="a: " + nested("{a: ", "}", 5000))
@example(text="a: " + "- " * 3000 + "x")
@example(text="\ud800: 1")
def test_project_file_any_text(folder: Path, text: str) -> None:
    """Any text at all: a project or a ProjectError that names the file."""
    load_text(folder, text)


@st.composite
def mutated_projects(draw: st.DrawFn) -> dict[str, Any]:
    """A valid project with one to four fields set to anything, at any level."""
    data = json.loads(json.dumps(BASE_PROJECT))
    capability = data["capabilities"][0]
    for _ in range(draw(st.integers(1, 4))):
        where = draw(
            st.sampled_from(["top", "capability", "knowledge", "model", "prices", "reader"])
        )
        key, value = draw(NAMES), draw(VALUES)
        if where == "top":
            data[key] = value
        elif where == "capability":
            capability[key] = value
        elif where == "reader":
            capability["sources"] = ["knowledge/"]
            capability["reader"] = {key: value}
        else:
            data[where] = {key: value}
    return data


@budget()
@given(data=mutated_projects())
@example(
    data={
        **BASE_PROJECT,
        "capabilities": [{**BASE_PROJECT["capabilities"][0], "sources": ["/etc/*"]}],
    }
)
@example(
    data={
        **BASE_PROJECT,
        "capabilities": [{**BASE_PROJECT["capabilities"][0], "sources": ["a\x00b"]}],
    }
)
@example(
    data={
        **BASE_PROJECT,
        "capabilities": [{**BASE_PROJECT["capabilities"][0], "sources": ["a" * 300]}],
    }
)
@example(
    data={
        **BASE_PROJECT,
        "capabilities": [{**BASE_PROJECT["capabilities"][0], "examples": "a" * 300}],
    }
)
@example(
    data={**BASE_PROJECT, "capabilities": [{**BASE_PROJECT["capabilities"][0], "sources": [""]}]}
)
def test_project_file_any_structure(folder: Path, data: dict[str, Any]) -> None:
    """A project with any field holding any value: a project or a ProjectError."""
    load_text(folder, yaml.safe_dump(data, allow_unicode=True))


@budget()
@given(
    field=st.sampled_from(["version", "horizon_months", "project", "prices"]),
    tag=st.sampled_from(TAGS),
    value=SCALAR_TEXT,
)
@example(field="horizon_months", tag="!!int", value="abc")
@example(field="horizon_months", tag="!!timestamp", value="2024-02-30")
def test_project_file_tagged_values(folder: Path, field: str, tag: str, value: str) -> None:
    """Any YAML tag on any scalar: never the constructor's own ValueError."""
    load_text(folder, yaml.safe_dump(BASE_PROJECT) + f"{field}: {tag} {json.dumps(value)}\n")


@budget(0.25)
@given(
    depth=st.integers(0, 6000),
    style=st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", "")]),
)
@example(depth=4000, style=("[", "]"))
@example(depth=5000, style=("{a: ", "}"))
def test_project_file_any_nesting(folder: Path, depth: int, style: tuple[str, str]) -> None:
    """Deep nesting anywhere in the file is refused with the file and line, not a RecursionError."""
    opening, closing = style
    body = nested(opening, closing, depth) + ("x" if opening == "- " else "")
    load_text(folder, yaml.safe_dump(BASE_PROJECT) + "prices: " + body + "\n")


# -- JSONL readers -------------------------------------------------------------------------------

EXAMPLE_LINES = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries(
        {"input": JSON_VALUES, "output": JSON_VALUES},
        optional={"context": JSON_VALUES, "extra": JSON_VALUES},
    ).map(lambda d: json.dumps(d, ensure_ascii=False)),
    st.text(max_size=60).map(lambda s: s.replace("\n", " ")),
    st.integers(0, 100_000).map(lambda n: nested("[", "]", n)),
    st.sampled_from(['{"input": "a\\ud800", "output": "b"}', '{"input": "x", "output": NaN}']),
)


def check_examples(folder: Path, data: bytes) -> None:
    path = folder / "examples.jsonl"
    path.write_bytes(data)
    from ragtune.audit.evidence import scan_examples

    with bounded():
        try:
            loaded = load_examples(path, folder)
        except ExamplesError as exc:
            assert "examples.jsonl" in str(exc), str(exc)
        else:
            dataset_hash(loaded)  # the manifest's hash of every example it accepted
            assert all(ex.input.strip() and ex.output.strip() for ex in loaded.examples)
        scan_examples(path)  # the audit's tolerant reader


@budget()
@given(lines=st.lists(EXAMPLE_LINES, max_size=6))
@example(lines=[nested("[", "]", 100_000)])
@example(lines=['{"input": "a\\ud800", "output": "b"}'])
@example(lines=['{"input": "x", "output": ' + nested("[", "]", 5000) + "}"])
@example(lines=['{"input": "x", "output": "y", "context": ' + nested("[", "]", 5000) + "}"])
@example(lines=['{"inptu": "x", "output": "y"}'])
@example(lines=[json.dumps({"input": "x", "output": '{"a": ' + nested("[", "]", 5000) + "}"})])
def test_examples_file_any_lines(folder: Path, lines: list[str]) -> None:
    """Any lines: examples, or an ExamplesError naming the file (and the line)."""
    check_examples(folder, "\n".join(lines).encode("utf-8", "surrogatepass"))


@budget()
@given(data=st.binary(max_size=200))
def test_examples_file_any_bytes(folder: Path, data: bytes) -> None:
    """Any bytes: examples, or an ExamplesError naming the file."""
    check_examples(folder, data)


@pytest.fixture(scope="module")
def eval_project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("eval-project")
    (root / "ragtune.yaml").write_text(
        textwrap.dedent(
            """
            version: 1
            project: props
            capabilities:
              - name: terms
                description: answers about the terms
            """
        )
    )
    return load_project(root)


EVAL_LINES = st.one_of(
    EXAMPLE_LINES,
    st.fixed_dictionaries(
        {"capability": st.sampled_from(["terms", "term", ""]) | JSON_VALUES, "input": JSON_VALUES},
        optional={
            "expected": JSON_VALUES,
            "answer": JSON_VALUES,
            "after": JSON_VALUES,
            "rephrased": JSON_VALUES,
        },
    ).map(lambda d: json.dumps(d, ensure_ascii=False)),
)


@budget()
@given(lines=st.lists(EVAL_LINES, max_size=5))
@example(lines=['{"capability": ' + nested("[", "]", 5000) + ', "input": "x"}'])
@example(
    lines=[
        '{"capability": "terms", "input": "x", "expected": ["a"], "after": '
        + nested("[", "]", 5000)
        + "}"
    ]
)
@example(lines=['{"capability": "terms", "input": "x\\ud800", "expected": ["a"]}'])
def test_eval_file_any_lines(eval_project: Any, lines: list[str]) -> None:
    """Any lines of an eval set: items, or an EvalError naming the file and line."""
    from ragtune.lab.evalset import EvalError, load_eval

    path = eval_project.root / "eval.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    with bounded():
        try:
            load_eval([path], eval_project)
        except EvalError as exc:
            assert "eval.jsonl" in str(exc), str(exc)


# -- the chunker ---------------------------------------------------------------------------------

CLAUSEY = st.sampled_from(
    [
        "7. ",
        "7.1 ",
        "7.1.2 Title. ",
        "Section 7 ",
        "ARTICLE IV ",
        "Clause 12: ",
        "1.5 2.5 ",
        "**Bold** ",
    ]
)
BLOCK_TEXT = st.one_of(
    st.text(min_size=1, max_size=200),
    st.tuples(CLAUSEY, st.text(max_size=80)).map("".join),
    st.lists(st.tuples(CLAUSEY, SCALAR_TEXT).map("".join), min_size=1, max_size=8).map("\n".join),
    st.integers(1, 3000).map(lambda n: "word " * n),
    st.integers(1, 2000).map(lambda n: "x" * n),
)
BLOCKS = st.lists(
    st.one_of(
        st.builds(Block, st.just("heading"), st.integers(1, 6), st.text(min_size=1, max_size=60)),
        st.builds(Block, st.just("text"), st.just(0), BLOCK_TEXT),
    ),
    min_size=1,
    max_size=12,
)


@budget()
@given(
    blocks=BLOCKS,
    kind=st.sampled_from(["markdown", "text", "html", "pdf"]),
    target=st.integers(32, 400),
    extra=st.integers(0, 200),
)
def test_chunker_any_blocks(blocks: list[Block], kind: Any, target: int, extra: int) -> None:
    """Any blocks: chunks in order with unique ids, every word of the text kept."""
    doc = ParsedDocument("d.md", kind, "Title", "0" * 64, blocks)
    with bounded():
        chunks = chunk_document(doc, target_tokens=target, max_tokens=target + extra)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    kept = {word for c in chunks for word in c.text.split()}
    given_words = {word for b in blocks for word in b.text.split()}
    assert given_words <= kept, sorted(given_words - kept)[:5]


# -- document loaders ----------------------------------------------------------------------------

HTML_TAGS = ["div", "p", "h1", "h3", "table", "tr", "td", "th", "ul", "li", "pre", "span", "b",
             "script", "style", "title", "br", "a", "blockquote", "nav", "svg"]  # fmt: skip
HTML = st.recursive(
    st.text(max_size=20).map(lambda s: s.replace("<", "&lt;")),
    lambda inner: st.tuples(st.sampled_from(HTML_TAGS), st.lists(inner, max_size=4)).map(
        lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0]}>"
    ),
    max_leaves=20,
)
MARKDOWN_LINES = st.lists(
    st.one_of(
        st.sampled_from(["# ", "## ", "- ", "1. ", "> ", "```", "---", "+++", "| a | b |",
                         "|---|---|", "<div>", "</div>", "title: x", "===", "    code", ""]),
        st.text(max_size=30),
    ),
    max_size=20,
).map("\n".join)  # fmt: skip


def check_document(folder: Path, name: str, data: bytes) -> None:
    path = folder / "docs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    with bounded():
        try:
            parsed = parse_document(path, folder)
        except SourceError as exc:
            assert exc.path == f"docs/{name}" and str(exc).startswith(exc.path), str(exc)
        else:
            assert parsed.blocks and all(b.text.strip() for b in parsed.blocks)
            chunk_document(parsed)


@budget()
@given(
    name=st.sampled_from(["a.md", "a.txt", "a.html", "a.htm", "a.pdf", "a.MD"]),
    data=st.binary(max_size=300),
)
@example(name="a.pdf", data=b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF")
def test_document_any_bytes(folder: Path, name: str, data: bytes) -> None:
    """Any bytes under any document suffix: a document or a SourceError naming the file."""
    check_document(folder, name, data)


@budget(0.67)
@given(html=HTML, depth=st.integers(0, 3000))
@example(html="text", depth=50_000)
def test_html_any_tree(folder: Path, html: str, depth: int) -> None:
    """Any tree of tags, nested to any depth: a document or a SourceError."""
    page = f"<html><body>{nested('<div>', '</div>', depth)}{html}</body></html>"
    check_document(folder, "page.html", page.encode())


@budget(0.67)
@given(
    text=MARKDOWN_LINES, nesting=st.integers(0, 2000), marker=st.sampled_from(["> ", "- ", "  - "])
)
@example(text="text", nesting=2000, marker="> ")
def test_markdown_any_text(folder: Path, text: str, nesting: int, marker: str) -> None:
    """Any Markdown, nested quotes and lists included: a document or a SourceError."""
    check_document(folder, "page.md", (marker * nesting + text).encode("utf-8", "surrogatepass"))


@budget()
@given(text=st.text(max_size=200), key=st.none() | st.text(max_size=8))
def test_table_any_text(folder: Path, text: str, key: str | None) -> None:
    """Any CSV text: a table whose rows chunk, or a SourceError naming the file."""
    path = folder / "t.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with bounded():
        try:
            table = load_table(path, folder, key)
        except SourceError as exc:
            assert exc.path == "t.csv", str(exc)
        else:
            chunk_table(table)


# -- path checks ---------------------------------------------------------------------------------

PARTS = st.sampled_from(
    ["knowledge", "docs", "a.md", "b.csv", "..", ".", "", "**", "*", "*.md", "[a-", ".hidden",
     "a" * 300, "%FF%FE.md", "é.md", "a\x00b", "a\\b", " ", "~", "nda.md", "x.md"]
)  # fmt: skip
PATHS = st.one_of(
    st.lists(PARTS, max_size=6).map("/".join),
    st.tuples(st.sampled_from(["", "/"]), st.lists(PARTS, max_size=6).map("/".join)).map("".join),
    st.text(max_size=40),
    st.integers(0, 3000).map(lambda n: "knowledge/" + "a/" * n + "x.md"),
    st.integers(0, 60).map(lambda n: "/".join(["**"] * n) + "/x.md"),
)


@pytest.fixture(scope="module")
def source_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    (root / "knowledge" / "sub").mkdir(parents=True)
    (root / "knowledge" / "nda.md").write_text("# NDA\n\nTerms.\n")
    (root / "knowledge" / "sub" / "x.md").write_text("# X\n\nText.\n")
    (root / "docs").mkdir()
    (root / "docs" / "b.csv").write_text("k,v\na,1\n")
    (root / "docs" / "c.md").write_text("# C\n\nMore.\n")
    return root


@budget()
@given(ref=PATHS, rel=PATHS)
@example(ref="knowledge/**/*.md", rel="knowledge/" + "a/" * 1500 + "x.md")
@example(ref="/".join(["**"] * 30) + "/y.md", rel="knowledge/" + "a/" * 30 + "x.md")
@example(ref="a" * 300, rel="a" * 300)
@example(ref="**/../**", rel="x.md")
@example(ref="knowledge/", rel="a\x00b")
def test_source_path_checks(source_root: Path, ref: str, rel: str) -> None:
    """Any reference and path: covers, glob_match, split_ref and source_folder answer, and
    discover finds files inside the project or skips with a reason."""
    with bounded():
        assert isinstance(covers(source_root, ref, rel), bool)
        assert isinstance(glob_match(rel, ref), bool)
        _part, column = split_ref(ref)
        assert column is None or ref.endswith(column)
        source_folder(source_root, ref)
        found = discover(source_root, [ref])
    for path in found.files:
        assert path.resolve().is_relative_to(source_root.resolve())


@pytest.fixture(scope="module")
def served_project(source_root: Path) -> Any:
    (source_root / "ragtune.yaml").write_text(
        textwrap.dedent(
            """
            version: 1
            project: props
            capabilities:
              - name: terms
                description: answers about the terms
                sources: [knowledge/, "docs/*.md", docs/b.csv#k]
            """
        )
    )
    return load_project(source_root)


@budget()
@given(raw=PATHS, capability=st.none() | st.sampled_from(["terms", "nope"]))
@example(raw="knowledge/" + "a/" * 1500 + "x.md", capability=None)
@example(raw="knowledge/" + "a" * 300 + ".md", capability=None)
@example(raw="knowledge/nda.md/x.md", capability=None)
@example(raw="knowledge/%FF%FE.md", capability=None)
def test_server_document_path_check(served_project: Any, raw: str, capability: str | None) -> None:
    """The server's check of a document path: a target inside the sources, or a DocumentError
    (400, 403 or 404) - never another exception."""
    from ragtune.server.documents import DocumentError, resolve_document

    with bounded():
        try:
            target = resolve_document(served_project, raw, capability)
        except DocumentError as exc:
            assert exc.status in (400, 403, 404), exc.status
        else:
            root = served_project.root.resolve()
            assert target.path.is_relative_to(root) and ".." not in target.rel.split("/")
