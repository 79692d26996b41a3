"""Knowledge sources: the files a capability's ``sources:`` name, and what a reference covers.

A reference is a folder, a file or a glob relative to the project root; ``table.csv#column``
names a table and its key column; ``tool:...`` names a function called at query time, never a
file. Every part of ragtune that reads a reference asks this module:

- :func:`discover`: the files the references name (the sync and the audit);
- :func:`covers`: whether a reference covers a document path that may not exist yet (the
  server, before it writes one);
- :func:`source_folder`: the folder in which a reference's files can change (the watcher).

Reading a file is the business of ``parse.py`` (documents) and ``tables.py`` (CSV tables).

Problems with one file raise :class:`SourceError` naming the file and the reason, so a sync can
report the file, skip it and go on with the rest. This module imports no parser.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from ragtune.errors import RagtuneError
from ragtune.knowledge.tools import is_tool_ref

DocumentKind = Literal["markdown", "text", "html", "pdf", "office"]

DOCUMENT_SUFFIXES: dict[str, DocumentKind] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    # Word, PowerPoint and Excel through markitdown (the `office` extra).
    ".docx": "office",
    ".pptx": "office",
    ".xlsx": "office",
}
TABLE_SUFFIXES = frozenset({".csv"})
SUPPORTED_SUFFIXES = frozenset(DOCUMENT_SUFFIXES) | TABLE_SUFFIXES

_GLOB_CHARS = re.compile(r"[*?\[]")


class SourceError(RagtuneError):
    """A knowledge source cannot be used: names the file and the reason.

    Attributes:
        path: The file, relative to the project root where known.
        reason: What is wrong and, where it helps, what would be accepted.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Discovered:
    """What :func:`discover` found.

    Attributes:
        files: Supported documents and tables, absolute, deduplicated and sorted by their path
            relative to the root.
        skipped: ``(path, reason)`` for every file that was found or named but cannot be used
            (an unsupported type, a reference that matches nothing), for the caller to report.
        key_columns: The key column a ``table.csv#column`` reference names, by file.
    """

    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    key_columns: dict[Path, str] = field(default_factory=dict)


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (symlinks are not resolved)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return Path(rel).as_posix()


def split_ref(ref: str) -> tuple[str, str | None]:
    """Split a source reference into its path part and the key column it names, if any.

    ``tables/rates.csv#matter_type`` names a CSV table and its key column; any other reference
    is returned whole.

    Args:
        ref: A folder, file or glob relative to the project root, as written in ``sources:``.

    Returns:
        ``(path_part, key_column)``; ``key_column`` is None when the reference names none.
    """
    head, sep, column = ref.rpartition("#")
    if sep and head.lower().endswith(".csv") and column.strip():
        return head, column.strip()
    return ref, None


def discover(root: Path, refs: list[str]) -> Discovered:
    """Find the files that a capability's ``sources:`` references name.

    A reference is a folder (searched recursively), a file or a glob (``**`` allowed), relative
    to ``root`` unless absolute; ``table.csv#column`` names a table and its key column; a
    ``tool:`` reference names no file and is passed over. Hidden
    files and folders (a name starting with ``.``) are skipped inside folders and globs, but a
    hidden file named explicitly is used. Symlinked folders are not followed, and a file whose
    real path lies outside the project (a symbolic link out of it, an absolute path or ``..``
    elsewhere) is skipped with the reason: knowledge is what the project folder holds, and a
    server would otherwise index and serve any file the link reaches. A reference naming a
    folder outside the project (``/``, ``../..``, a glob under one) is skipped whole, unwalked.

    Args:
        root: The project root (the folder holding ``ragtune.yaml``).
        refs: The references, in any order; duplicates and overlaps are harmless.

    Returns:
        The supported files (documents and tables), the files skipped with the reason, and the
        key columns named by references.

    Raises:
        SourceError: Two references name different key columns for the same table.
    """
    root = Path(os.path.abspath(root))
    real_root = Path(os.path.realpath(root))
    found: dict[Path, None] = {}
    skipped: dict[Path, str] = {}
    key_columns: dict[Path, str] = {}

    for ref in refs:
        if is_tool_ref(ref):
            continue  # called at query time, never indexed
        part, key_column = split_ref(ref)
        away = _reference_outside(root, part)
        if away is not None:  # never walk a folder outside the project ("/", "../..")
            skipped.setdefault(root / part, f"the source {ref!r} names a folder {away}")
            continue
        matched, nothing = _named(root, part)
        if nothing is not None:
            skipped.setdefault(root / part, f"the source {ref!r} {nothing}")

        for path in map(Path, map(os.path.normpath, matched)):
            outside = _outside(path, real_root)
            if outside is not None:
                skipped.setdefault(path, outside)
            elif path.suffix.lower() in SUPPORTED_SUFFIXES:
                found[path] = None
            else:
                skipped.setdefault(path, unsupported_reason(path))
            if key_column is not None and path.suffix.lower() in TABLE_SUFFIXES:
                previous = key_columns.setdefault(path, key_column)
                if previous != key_column:
                    raise SourceError(
                        relative_posix(path, root),
                        f"two sources name different key columns ({previous!r} and "
                        f"{key_column!r}); name one",
                    )

    def order(item: Path | tuple[Path, str]) -> str:
        return relative_posix(item[0] if isinstance(item, tuple) else item, root)

    return Discovered(
        files=sorted(found, key=order),
        skipped=sorted(((p, r) for p, r in skipped.items() if p not in found), key=order),
        key_columns=key_columns,
    )


def _reference_outside(root: Path, part: str) -> str | None:
    """Why a reference, as written, names a folder outside the project, or None.

    Checked before the folder is walked: a source of ``/`` or ``../..`` would otherwise walk a
    whole file system only to skip every file in it. A glob's folder is the part before its
    first glob character. Symbolic links are judged file by file (:func:`_outside`).
    """
    names = part.split("/")
    fixed = next((i for i, name in enumerate(names) if _GLOB_CHARS.search(name)), len(names))
    base = Path(os.path.abspath(root / "/".join(names[:fixed])))
    if base.is_relative_to(root) or not _is_dir(base):
        return None
    return "outside the project folder: not used; copy the files into the project to use them"


def _named(root: Path, part: str) -> tuple[list[Path], str | None]:
    """The files a reference's path names (folders walked), or why it names none."""
    target = root / part
    if _GLOB_CHARS.search(part):
        files, matched = glob_files(root, part)
        return files, None if matched else "matches no files"
    if _is_dir(target):
        return _walk(target), None
    if _is_file(target):
        return [target], None  # named explicitly: used even if hidden
    return [], "names no file or folder"


def glob_files(root: Path, part: str) -> tuple[list[Path], bool]:
    """The files a glob names, and whether it matched anything (a folder it matches is walked).

    Args:
        root: The project root.
        part: The glob, relative to ``root`` (or absolute), without a ``#column``.

    Returns:
        ``(files, matched)``: the files, hidden ones left out; whether any file or folder
        matched.

    Walks the glob's fixed folder with :func:`os.walk`, which follows no symbolic link inside
    it, and matches each path name by name (:func:`glob_match`, the rule :func:`covers`
    follows). :func:`glob.glob` followed linked folders: two links to ``.`` in one folder made
    ``docs/**/*.md`` search 2^800 paths, and ``**/../**`` climbed out of the project.
    """
    names = part.split("/")
    fixed = next(i for i, name in enumerate(names) if _GLOB_CHARS.search(name))
    base = Path(os.path.abspath(root / "/".join(names[:fixed])))
    if not _is_dir(base) or _is_hidden(base, root):
        return [], False
    pattern = _names(relative_posix(base, root)) + _names("/".join(names[fixed:]))
    depth = None if "**" in pattern else len(pattern)  # no deeper than the pattern's names
    files: list[Path] = []
    matched = False
    for current, dirs, found in os.walk(base):
        here = _names(relative_posix(Path(current), root))
        for name in sorted(dirs):
            if not name.startswith(".") and _match_names([*here, name], pattern):
                matched = True
                folder = Path(current) / name
                if not folder.is_symlink():  # a matched folder: all of it; a link: not followed
                    files.extend(_walk(folder))
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and not _match_names([*here, d], pattern)
            and (depth is None or len(here) + 1 < depth)
        )
        for name in sorted(found):
            if not name.startswith(".") and _match_names([*here, name], pattern):
                matched = True
                files.append(Path(current) / name)
    return files, matched


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a name the file system refuses (too long, a NUL)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the file system refuses (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _walk(folder: Path) -> list[Path]:
    """Every non-hidden file under ``folder``, recursively, hidden folders pruned."""
    paths: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths.extend(Path(current) / f for f in sorted(files) if not f.startswith("."))
    return paths


def _outside(path: Path, real_root: Path) -> str | None:
    """Why ``path`` is not knowledge of the project at ``real_root`` (its real path lies outside
    it), or None when it lies inside."""
    try:
        real = Path(os.path.realpath(path))
    except OSError as exc:  # a link that cannot be read
        return f"cannot be resolved ({exc.strerror or exc})"
    if real.is_relative_to(real_root):
        return None
    if os.path.islink(path) or real != Path(os.path.abspath(path)):
        return (
            f"a symbolic link to {real}, outside the project: not followed; copy the file into "
            "the project to use it"
        )
    return "outside the project folder: not used; copy the file into the project to use it"


def _is_hidden(path: Path, root: Path) -> bool:
    """Whether any part of ``path`` below ``root`` starts with a dot."""
    rel = Path(os.path.relpath(os.path.abspath(path), root))
    return any(part.startswith(".") and part not in (".", "..") for part in rel.parts)


def unsupported_reason(path: Path) -> str:
    """Why a file of this type is not a source, and the types that are."""
    suffix = path.suffix.lower()
    kind = f"file type {suffix!r}" if suffix else "file without a suffix"
    return f"unsupported {kind}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"


def covers(root: Path, ref: str, rel: str) -> bool:
    """Whether a source reference covers a document path, whether or not the file exists yet.

    What the server asks before it writes a document: a folder covers every path below it (a
    reference ending in ``/`` is a folder even before it exists), a file covers itself (a
    ``table.csv#column`` reference its table), a glob covers the paths it matches name by name
    (``**`` standing for any number of folders, none included). An absolute glob and a
    ``tool:`` reference cover nothing.

    Args:
        root: The project root.
        ref: One entry of a capability's ``sources:``.
        rel: The document's POSIX path relative to ``root``.

    Returns:
        True when the reference covers the path.
    """
    if is_tool_ref(ref):
        return False
    part, _ = split_ref(ref)
    if _GLOB_CHARS.search(part):
        return not PurePosixPath(part).is_absolute() and glob_match(rel, part)
    try:
        path = (root / rel).resolve()
        source = (root / part).resolve()
    except (OSError, ValueError):  # a NUL or an unreadable link: no file of the project
        return False
    if _is_dir(source) or part.endswith("/"):
        return path.is_relative_to(source) and path != source
    return path == source


def source_folder(root: Path, ref: str) -> Path | None:
    """The folder that holds every file a reference can name: where to watch it for changes.

    A folder is its own; a file's (a table's) is the folder it is in; a glob's is made of its
    names before the first that holds a glob character (``docs`` for ``docs/sub*/*.md``).

    Args:
        root: The project root.
        ref: One entry of a capability's ``sources:``.

    Returns:
        The resolved folder, or None for a ``tool:`` reference, which names no file.
    """
    if is_tool_ref(ref):
        return None
    part, _ = split_ref(ref)
    if _GLOB_CHARS.search(part):
        names = part.split("/")
        fixed = next(i for i, name in enumerate(names) if _GLOB_CHARS.search(name))
        return _resolved(root / "/".join(names[:fixed]))
    path = _resolved(root / part)
    return path if _is_dir(path) else path.parent


def _resolved(path: Path) -> Path:
    """``path.resolve()``; the absolute path as written when it cannot be resolved."""
    try:
        return path.resolve()
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


def glob_match(rel: str, pattern: str) -> bool:
    """Whether a relative POSIX path matches a glob, one name against one part of the pattern.

    ``*``, ``?`` and ``[...]`` match within one name (case-sensitive, as ``fnmatchcase``);
    ``**`` matches any number of folders, none included, so ``docs/**/*.md`` matches
    ``docs/a.md`` and ``docs/x/y/a.md``.
    """
    return _match_names(_names(rel), _names(pattern))


def _names(path: str) -> list[str]:
    return [name for name in path.split("/") if name not in ("", ".")]


def _match_names(names: list[str], pattern: list[str]) -> bool:
    """Match names against pattern parts, left to right, keeping every place a match can stand.

    Linear in names times parts: the recursive form tried every way to share the names among
    several ``**`` (exponential: thirty of them never answered) and recursed once a name.
    """
    places = {0}  # how many names the parts so far can have consumed
    for part in pattern:
        if part == "**":
            places = set(range(min(places), len(names) + 1))
        else:
            places = {
                i + 1 for i in places if i < len(names) and fnmatch.fnmatchcase(names[i], part)
            }
        if not places:
            return False
    return len(names) in places
