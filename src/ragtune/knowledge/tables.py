"""CSV tables of records, answered by exact lookup on a key column.

A CSV file named in ``sources:`` (``tables/rates.csv#matter_type`` names its key column) becomes
a :class:`Table`; ``chunk.py`` makes one chunk of each row.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ragtune.knowledge.parse import decode_text, read_bytes
from ragtune.knowledge.sources import SourceError, relative_posix

if TYPE_CHECKING:
    from _csv import Reader


@dataclass(frozen=True)
class Table:
    """A CSV table of records, answered by exact lookup on its key column.

    Attributes:
        path: POSIX path relative to the project root.
        key_column: The column whose values identify a row (unique, case-insensitive).
        columns: Column names in file order.
        rows: One ``{column: value}`` dict per data row, in file order.
        sha256: Hex digest of the raw bytes.
    """

    path: str
    key_column: str
    columns: list[str]
    rows: list[dict[str, str]]
    sha256: str

    @cached_property
    def _index(self) -> dict[str, dict[str, str]]:
        index: dict[str, dict[str, str]] = {}
        for row in self.rows:
            index.setdefault(normalize_key(row.get(self.key_column, "")), row)
        return index

    def lookup(self, key: str) -> dict[str, str] | None:
        """Find the row whose key column equals ``key``.

        Args:
            key: The value to look up; case and surrounding or repeated whitespace are ignored.

        Returns:
            The row, or None when no row has that key.
        """
        return self._index.get(normalize_key(key))

    def row_text(self, row: dict[str, str]) -> str:
        """Render a row for search as ``"column: value; column: value"`` in column order."""
        return "; ".join(f"{column}: {row.get(column, '')}" for column in self.columns)


def normalize_key(value: str) -> str:
    """The form in which table keys are compared: case-folded, whitespace collapsed."""
    return " ".join(value.split()).casefold()


def load_table(
    path: Path, root: Path, key_column: str | None = None, *, max_bytes: int | None = None
) -> Table:
    """Load a CSV table of records keyed by one column.

    The first row is the header. UTF-8, with or without a byte-order mark; blank lines are
    ignored; cells are stripped of surrounding whitespace.

    Args:
        path: The CSV file.
        root: The project root; the table's ``path`` is stored relative to it.
        key_column: The column that identifies a row; default the first column.
        max_bytes: A larger file is refused before it is read (None: no limit).

    Returns:
        The table.

    Raises:
        SourceError: The file cannot be read or decoded, is larger than ``max_bytes``, is
            empty or has no data rows, has a blank or repeated column name, a row with a
            different number of fields than the header, no such key column, or an empty or
            repeated key (each names the line).
    """
    rel = relative_posix(path, root)
    data = read_bytes(path, rel, max_bytes)
    reader = csv.reader(io.StringIO(decode_text(data, rel), newline=""))
    try:
        columns, key = _header(reader, rel, key_column)
        rows = _rows(reader, rel, columns, key)
    except csv.Error as exc:
        raise SourceError(rel, f"line {reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise SourceError(rel, "empty table: a header but no data rows")
    return Table(
        path=rel,
        key_column=key,
        columns=columns,
        rows=rows,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _header(reader: Reader, rel: str, key_column: str | None) -> tuple[list[str], str]:
    """The column names from the first non-blank row, and the key column among them."""
    header = next((row for row in reader if row), None)
    if header is None:
        raise SourceError(rel, "empty table: no header row")
    line = reader.line_num
    columns = [name.strip() for name in header]
    for n, name in enumerate(columns, start=1):
        if not name:
            raise SourceError(rel, f"line {line}: column {n} of the header is blank")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SourceError(rel, f"line {line}: repeated column name(s) {', '.join(repeated)}")
    key = columns[0] if key_column is None else key_column.strip()
    if key not in columns:
        raise SourceError(rel, f"no key column {key!r}; the columns are: {', '.join(columns)}")
    return columns, key


def _rows(reader: Reader, rel: str, columns: list[str], key: str) -> list[dict[str, str]]:
    """The data rows, blank lines skipped; each has every column and a key no other row has."""
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue
        line = reader.line_num
        if len(record) != len(columns):
            raise SourceError(
                rel,
                f"line {line}: {len(record)} field(s) where the header has "
                f"{len(columns)} ({', '.join(columns)})",
            )
        row = {c: cell.strip() for c, cell in zip(columns, record, strict=True)}
        value = normalize_key(row[key])
        if not value:
            raise SourceError(rel, f"line {line}: the key column {key!r} is empty")
        if value in seen:
            raise SourceError(
                rel,
                f"line {line}: key {row[key]!r} repeats the key on line {seen[value]} "
                f"(keys in {key!r} must be unique, ignoring case)",
            )
        seen[value] = line
        rows.append(row)
    return rows
