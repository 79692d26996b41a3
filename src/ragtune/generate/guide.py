"""Enum-guided decoding: a JSON Schema's string enums can only be answered with their values.

A small model that has learned a JSON format still invents a category now and then
("Limitation of Liability" where the schema allows "Cap on Liability"). While the answer is
inside the value of a property whose schema is a string ``enum`` (``"category": "Ca``), this
logits processor lets through only the tokens that continue one of the allowed values (or
close it); everywhere else the model is free. It is a runtime guarantee for the most common
contract violation, not a JSON parser: keys, nesting and lengths are still checked by the
contract's validator afterwards.

No constrained-decoding library fits here: lm-format-enforcer 0.11 does not import with
transformers 5 (``transformers.tokenization_utils``), outlines and xgrammar pull in compilers
(triton) this CPU setup does not need. The processor is a prefix filter over the vocabulary,
indexed by each token's first character.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

__all__ = ["EnumGuide", "enum_fields"]


def enum_fields(schema: object) -> dict[str, tuple[str, ...]]:
    """The properties of an object schema whose values are a string ``enum``, with the values.

    Only the top level's ``properties`` are read (the shape of a flag or a label); nested
    objects are left free.
    """
    if not isinstance(schema, dict):
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and isinstance(prop.get("enum"), list):
            values = prop["enum"]
            if values and all(isinstance(v, str) for v in values):
                found[str(name)] = tuple(values)
    return found


class EnumGuide:
    """A ``transformers`` logits processor that keeps string-enum values inside the enum.

    Args:
        tokenizer: The model's tokenizer (each token is decoded once, here).
        fields: Property name -> allowed values (:func:`enum_fields`).
        prompt_length: Tokens of the (left-padded) prompt: what follows them is the answer.
    """

    def __init__(self, tokenizer: Any, fields: dict[str, tuple[str, ...]], prompt_length: int):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.values = {
            name: tuple(json.dumps(v)[1:-1] + '"' for v in values)  # as written inside JSON
            for name, values in fields.items()
        }
        keys = "|".join(re.escape(json.dumps(name)) for name in fields)
        # The answer ends inside an open string value of one of the fields.
        self._open = re.compile(rf"({keys})\s*:\s*\"((?:[^\"\\]|\\.)*)$")
        self._pieces, self._by_first = _vocabulary(tokenizer)
        self.constrained_steps = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for row in range(input_ids.shape[0]):
            answer = self.tokenizer.decode(
                input_ids[row, self.prompt_length :], skip_special_tokens=True
            )
            found = self._open.search(answer)
            if found is None:
                continue
            allowed = self.allowed(json.loads(found.group(1)), found.group(2))
            if not allowed:
                continue  # nothing fits: leave the model free; the validator will say so
            self.constrained_steps += 1
            mask = torch.full_like(scores[row], float("-inf"))
            index = torch.tensor(allowed, device=scores.device)
            mask[index] = scores[row, index]
            scores[row] = mask
        return scores

    def allowed(self, field: str, prefix: str) -> list[int]:
        """Token ids that continue ``prefix`` towards one of the field's values (or close it)."""
        rests = [v[len(prefix) :] for v in self.values.get(field, ()) if v.startswith(prefix)]
        if not rests:
            return []
        ids: list[int] = []
        for first in {rest[0] for rest in rests}:
            for token_id, piece in self._by_first.get(first, ()):
                if any(rest.startswith(piece) or _closes(piece, rest) for rest in rests):
                    ids.append(token_id)
        return ids


def _closes(piece: str, rest: str) -> bool:
    """A token that finishes the value and runs past its closing quote (``"``, ``",``)."""
    return piece.startswith(rest) and not any(c.isalnum() for c in piece[len(rest) :])


def _vocabulary(tokenizer: Any) -> tuple[list[str], dict[str, list[tuple[int, str]]]]:
    cached: tuple[list[str], dict[str, list[tuple[int, str]]]] | None = getattr(
        tokenizer, "_ragtune_pieces", None
    )
    if cached is not None:
        return cached
    size = len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    pieces: list[str] = []
    by_first: dict[str, list[tuple[int, str]]] = {}
    for token_id in range(size):
        piece = "" if token_id in special else tokenizer.decode([token_id])
        pieces.append(piece)
        if piece:
            by_first.setdefault(piece[0], []).append((token_id, piece))
    result = (pieces, by_first)
    with contextlib.suppress(AttributeError):  # a tokenizer that refuses attributes
        tokenizer._ragtune_pieces = result
    return result


def guided_kwargs(
    tokenizer: Any, schema: object, prompt_length: int
) -> tuple[dict[str, Any], EnumGuide | None]:
    """``generate()`` keyword arguments that guide a JSON answer's enums (none without any)."""
    fields = enum_fields(schema)
    if not fields:
        return {}, None
    from transformers import LogitsProcessorList

    guide = EnumGuide(tokenizer, fields, prompt_length)
    return {"logits_processor": LogitsProcessorList([guide])}, guide
