"""A LlamaIndex retriever over a ragtune project's knowledge
(``pip install 'ragtune[llamaindex]'``).

>>> import ragtune
>>> from ragtune.integrations.llamaindex import RagtuneLlamaRetriever
>>> retriever = RagtuneLlamaRetriever(ragtune.load("my-review"), k=4, capability="templates")
>>> nodes = retriever.retrieve("breach notification window")
>>> nodes[0].node.metadata["citation"], nodes[0].score
"""

from __future__ import annotations

from typing import Literal

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ragtune.api import Ragtune
from ragtune.integrations import hit_metadata

__all__ = ["RagtuneLlamaRetriever"]


class RagtuneLlamaRetriever(BaseRetriever):
    """Hybrid search of a project's knowledge as LlamaIndex nodes with scores.

    Args:
        ragtune: The open project (:func:`ragtune.load`).
        k: Passages per query.
        capability: Only this capability's sources (None: all).
        as_of: The knowledge as it was at a snapshot number, date or time (None: current).
        mode: ``hybrid``, ``vector`` or ``bm25``.
    """

    def __init__(
        self,
        ragtune: Ragtune,
        *,
        k: int = 4,
        capability: str | None = None,
        as_of: str | None = None,
        mode: Literal["hybrid", "vector", "bm25"] = "hybrid",
    ) -> None:
        super().__init__()
        self.ragtune = ragtune
        self.k = k
        self.capability = capability
        self.as_of = as_of
        self.mode = mode

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.ragtune.search(
            query_bundle.query_str,
            k=self.k,
            capability=self.capability,
            as_of=self.as_of,
            mode=self.mode,
        )
        return [
            NodeWithScore(
                node=TextNode(text=h.text, id_=h.chunk_id, metadata=hit_metadata(h)), score=h.score
            )
            for h in hits
        ]
