"""Stand-ins the tests share: a scripted backend where the real model is not the point."""

from __future__ import annotations

import threading
from typing import Any

from ragtune.generate.backend import (
    DEFAULT_PARAMS,
    Generation,
    GenerationParams,
    GuideError,
    Stream,
)

__all__ = ["ScriptedBackend"]


class ScriptedBackend:
    """A stand-in backend: answers from ``answers`` in turn (then ``default``), records each
    request's messages and params; a token is a word. A schema holding ``x-unguidable`` is
    one its engine "cannot express"."""

    name = "test:scripted"
    is_remote = False
    model_sha256 = None

    def __init__(self, default: str = "See [1].") -> None:
        self.default = default
        self.calls: list[tuple[list[dict[str, str]], GenerationParams]] = []
        self.answers: list[str] = []
        self.lock = threading.Lock()

    def generate(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Generation:
        if params.schema is not None and "x-unguidable" in params.schema:
            raise GuideError("the engine cannot express x-unguidable")
        with self.lock:
            self.calls.append((messages, params))
            text = self.answers.pop(0) if self.answers else self.default
        prompt = sum(self.count_tokens(m["content"]) for m in messages)
        return Generation(text, prompt, self.count_tokens(text), "stop", "base", 0.0)

    def stream(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Stream:
        made = self.generate(messages, params)

        def pieces() -> Any:
            half = len(made.text) // 2
            yield made.text[:half]
            yield made.text[half:]
            return made

        return Stream(pieces())

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def reload_adapter(self, name: str) -> str | None:
        return None

    def close(self) -> None:
        pass
