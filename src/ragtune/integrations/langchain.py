"""A LangChain retriever over a ragtune project's knowledge (``pip install 'ragtune[langchain]'``).

>>> import ragtune
>>> from ragtune.integrations.langchain import RagtuneRetriever
>>> retriever = RagtuneRetriever(ragtune=ragtune.load("my-review"), k=4, capability="templates")
>>> docs = retriever.invoke("breach notification window")
>>> docs[0].metadata["citation"]
'knowledge/dpa.md > 6. Personal Data Breach (version 2)'
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ragtune.api import Ragtune
from ragtune.integrations import hit_metadata

__all__ = ["RagtuneRetriever"]


class RagtuneRetriever(BaseRetriever):
    """Hybrid search of a project's knowledge as LangChain documents.

    Attributes:
        ragtune: The open project (:func:`ragtune.load`).
        k: Passages per query.
        capability: Only this capability's sources (None: all).
        as_of: The knowledge as it was at a snapshot number, date or time (None: current).
        mode: ``hybrid``, ``vector`` or ``bm25``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ragtune: Any
    k: int = 4
    capability: str | None = None
    as_of: str | None = None
    mode: Literal["hybrid", "vector", "bm25"] = "hybrid"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        project: Ragtune = self.ragtune
        hits = project.search(
            query, k=self.k, capability=self.capability, as_of=self.as_of, mode=self.mode
        )
        return [
            Document(page_content=h.text, metadata=hit_metadata(h), id=h.chunk_id) for h in hits
        ]
