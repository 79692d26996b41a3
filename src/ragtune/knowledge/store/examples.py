"""Few-shot examples in the SQLite store: the rows of table ``examples`` (``m003_examples``).

Behaviour few-shot selection (:mod:`ragtune.behavior.fewshot`) keeps each capability's examples
with the vectors of their texts in the knowledge store's file; the SQLite store takes these
methods from :class:`ExampleRows`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from ragtune.knowledge.store import ExampleRow
from ragtune.knowledge.store.migrations import blobs_by_key, transaction

__all__ = ["ExampleRow", "ExampleRows"]


class ExampleRows:
    """The few-shot example methods of the SQLite store, over its connection ``db``."""

    db: sqlite3.Connection

    def examples_state(self, capability: str) -> tuple[str, str] | None:
        """(dataset sha256, embedder) of a capability's live examples; None when it has none."""
        row = self.db.execute(
            "SELECT dataset_sha256, embedder FROM examples "
            "WHERE capability = ? AND valid = 1 LIMIT 1",
            (capability,),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def example_vectors_by_hash(self, hashes: Iterable[str], embedder: str) -> dict[str, bytes]:
        """Vectors this embedder made for these example texts before (any capability, version)."""
        return blobs_by_key(
            self.db,
            "SELECT input_hash, vector FROM examples WHERE embedder = ? "
            "AND input_hash IN ({marks})",
            hashes,
            [embedder],
        )

    def replace_examples(
        self,
        capability: str,
        rows: Sequence[ExampleRow],
        *,
        path: str,
        dataset_sha256: str,
        embedder: str,
    ) -> None:
        """Make ``rows`` the capability's live examples, in one transaction.

        The live rows before become the previous version (``valid = 0``), kept for their
        vectors; the version before that is deleted.
        """
        with transaction(self.db) as db:
            db.execute("DELETE FROM examples WHERE capability = ? AND valid = 0", (capability,))
            db.execute("UPDATE examples SET valid = 0 WHERE capability = ?", (capability,))
            db.executemany(
                "INSERT INTO examples (capability, line, input, output, context, input_hash, "
                "embedder, vector, path, dataset_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        capability, r.line, r.input, r.output, r.context, r.input_hash,
                        embedder, r.vector, path, dataset_sha256,
                    )
                    for r in rows
                ],
            )  # fmt: skip

    def live_examples(self, capability: str) -> list[ExampleRow]:
        """A capability's live examples with their vectors, in line order."""
        rows = self.db.execute(
            "SELECT line, input, output, context, input_hash, vector FROM examples "
            "WHERE capability = ? AND valid = 1 ORDER BY line, id",
            (capability,),
        ).fetchall()
        return [
            ExampleRow(
                line=int(r[0]),
                input=r[1],
                output=r[2],
                context=r[3],
                input_hash=r[4],
                vector=bytes(r[5]),
            )
            for r in rows
        ]
