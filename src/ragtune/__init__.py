"""ragtune: knowledge in context, behaviour in weights.

Decides, per capability of an LLM application, between retrieval, few-shot prompting and a LoRA
adapter; builds, serves and verifies the choice. ``import ragtune`` stays light: heavy
dependencies are imported lazily by the stages that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
