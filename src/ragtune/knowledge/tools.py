"""Python callables registered as tools: knowledge that lives behind an API call.

Some knowledge is never a document: a counterparty's sanctions status, today's exchange rate, an
order's state. A capability declares such a source as ``tool:FILE.py:FUNCTION`` (a file in the
project) or ``tool:package.module:FUNCTION`` (an importable module)::

    capabilities:
      - name: counterparties
        description: Look up a counterparty's screening status before a contract is signed.
        sources: ["tool:tools/counterparties.py:counterparty_status"]

and the file marks the function with :func:`tool`::

    from ragtune.knowledge.tools import tool

    @tool(description="Screening status of a counterparty, by name")
    def counterparty_status(query: str) -> str:
        ...  # call the screening API here
        return "Acme Ltd: cleared on 2026-10-02 (no sanctions match)"

A tool takes the user's request as one string and returns text (or a list of texts). It is
called at query time, never indexed: its answer is as current as the API behind it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ragtune.errors import RagtuneError

PREFIX = "tool:"
ToolFunction = Callable[[str], "str | list[str]"]


class ToolError(RagtuneError):
    """A tool cannot be found, loaded or called."""


@dataclass(frozen=True)
class Tool:
    """A registered callable and what it is for."""

    name: str
    description: str
    function: ToolFunction
    ref: str

    def __call__(self, query: str) -> list[str]:
        """Call the tool; its answer as a list of texts. Failures become a ToolError."""
        try:
            answer = self.function(query)
        except Exception as exc:  # the tool's own failure, whatever it is, named for the user
            raise ToolError(f"tool {self.name} ({self.ref}) failed: {exc!r}") from exc
        if isinstance(answer, str):
            return [answer]
        if isinstance(answer, list) and all(isinstance(a, str) for a in answer):
            return answer
        raise ToolError(
            f"tool {self.name} ({self.ref}) returned {type(answer).__name__}; a tool returns a "
            "string or a list of strings"
        )


def tool(name: str | None = None, description: str = "") -> Callable[[ToolFunction], ToolFunction]:
    """Mark a function as a ragtune tool (it can then be named in ``sources:``)."""

    def mark(function: ToolFunction) -> ToolFunction:
        function.__ragtune_tool__ = (  # type: ignore[attr-defined]
            name or function.__name__,
            description or (function.__doc__ or "").strip().split("\n")[0],
        )
        return function

    return mark


def is_tool_ref(ref: str) -> bool:
    """Whether a ``sources:`` entry names a tool."""
    return ref.startswith(PREFIX)


def tool_file(ref: str, root: Path) -> Path | None:
    """The Python file a ``tool:FILE.py:FUNCTION`` ref names (None for a module ref)."""
    target, _, _ = ref[len(PREFIX) :].rpartition(":")
    return (root / target) if target.endswith(".py") else None


def load_tool(ref: str, root: Path) -> Tool:
    """Import the callable a ``tool:...`` ref names and check it is marked with :func:`tool`."""
    target, _, function_name = ref[len(PREFIX) :].rpartition(":")
    if not target or not function_name:
        raise ToolError(
            f"{ref!r}: a tool source is tool:FILE.py:FUNCTION or tool:package.module:FUNCTION."
        )
    if target.endswith(".py"):
        path = (root / target).resolve()
        if not path.is_file():
            raise ToolError(f"{ref!r}: no file {path}.")
        module_name = f"ragtune_tool_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ToolError(f"{ref!r}: cannot import {path}.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's module failed to import
            raise ToolError(f"{ref!r}: importing {path} failed: {exc!r}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ToolError(f"{ref!r}: cannot import module {target!r}: {exc}") from exc
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise ToolError(f"{ref!r}: {target} has no function {function_name!r}.")
    marked = getattr(function, "__ragtune_tool__", None)
    if marked is None:
        raise ToolError(
            f"{ref!r}: {function_name} is not marked as a tool; decorate it with "
            "@ragtune.knowledge.tools.tool(description=...)."
        )
    name, description = marked
    return Tool(name=name, description=description, function=function, ref=ref)
