"""ragtune: knowledge in context, behaviour in weights.

Decides, per capability of an LLM application, between retrieval, few-shot prompting and a LoRA
adapter; builds, serves and verifies the choice. ``import ragtune`` stays light: heavy
dependencies are imported lazily by the stages that need them.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Ragtune", "__version__", "load"]

if TYPE_CHECKING:
    from ragtune.api import Ragtune, load


def __getattr__(name: str) -> Any:
    """``ragtune.load`` and ``ragtune.Ragtune`` (:mod:`ragtune.api`), imported on first use so
    that ``import ragtune`` stays light."""
    if name in ("load", "Ragtune"):
        from ragtune import api

        return getattr(api, name)
    raise AttributeError(f"module 'ragtune' has no attribute {name!r}")
