"""Output contracts: what a behaviour's output must look like, checked the same way everywhere.

A behaviour capability names its contract in ``ragtune.yaml`` (``output_contract:``):

- a ``.json`` file holds a JSON Schema (any draft ``jsonschema`` knows; 2020-12 when the schema
  does not say). The output must be JSON, optionally inside one fenced ```` ```json ```` block,
  and valid against the schema (``format`` keywords are checked too).
- any other file (``.regex``, ``.txt``) holds one regular expression on its first non-empty
  line (surrounding whitespace stripped). The whole output, stripped or as written, must match
  it (``re.fullmatch`` with ``re.DOTALL``): a guided answer is the pattern's match exactly, and
  its last character may be a space the pattern allows.

The runtime validates each generated answer with :meth:`OutputContract.validate`; the lab and
adapter evaluation score a batch with :func:`compliance`.

``jsonschema`` is imported only when a JSON Schema contract is loaded (it takes about 0.1 s).
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragtune.errors import RagtuneError

ContractKind = Literal["json-schema", "regex"]

# ```json ... ``` (or a bare ```), alone in the text once surrounding whitespace is stripped.
_FENCE = re.compile(r"\A```(?:json)?[ \t]*\n(?P<body>.*?)\n?[ \t]*```\Z", re.DOTALL | re.IGNORECASE)

_MESSAGE_LIMIT = 200
_EXCERPT = 60
_SHORT_ENUM = 5


class ContractError(RagtuneError):
    """An output contract file cannot be used: names the file, the line where known, and why.

    Attributes:
        path: The file, relative to the project root where known.
        line: The 1-based line at fault, or None.
        reason: What is wrong and, where it helps, what would be accepted.
    """

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        super().__init__(str(path), reason, line)
        self.path = str(path)
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}, line {self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ContractResult:
    """Whether one output honours its contract.

    Attributes:
        ok: True when it does.
        errors: Short messages, each with the JSON path at fault where there is one
            (``"$.risk: 'severe' is not one of ['low', 'medium', 'high']"``); empty when ok.
        parsed: The parsed JSON value for a JSON Schema contract (also when only the schema
            check failed), the stripped text for a regex contract that matched; None when the
            text could not be parsed or did not match.
    """

    ok: bool
    errors: list[str] = field(default_factory=list)
    parsed: object | None = None


@dataclass(frozen=True)
class ComplianceReport:
    """How many outputs of a batch honour a contract.

    Attributes:
        total: Outputs checked.
        ok: Outputs that honour the contract.
        rate: ``ok / total``; 0.0 for an empty batch, so an empty evaluation never passes a
            threshold.
        failures: ``(index, errors)`` for each output that does not, index 0-based in the batch.
    """

    total: int
    ok: int
    rate: float
    failures: list[tuple[int, list[str]]]


class OutputContract(ABC):
    """A contract an output must honour; load one with :func:`load_contract`.

    Attributes:
        kind: ``json-schema`` or ``regex``.
        source: The file it was loaded from (relative to the project root where one was given).
    """

    kind: ContractKind

    def __init__(self, source: str) -> None:
        self.source = source

    @abstractmethod
    def validate(self, text: str) -> ContractResult:
        """Check one output.

        Args:
            text: The model's answer, as generated.

        Returns:
            Whether it honours the contract, why not, and what was parsed from it.
        """

    @abstractmethod
    def describe(self) -> str:
        """A short description of the wanted output for a prompt (``"a JSON object with ..."``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r})"


class JsonSchemaContract(OutputContract):
    """The output must be JSON valid against a JSON Schema."""

    kind: ContractKind = "json-schema"

    def __init__(self, source: str, schema: dict[str, Any] | bool, validator: Any) -> None:
        super().__init__(source)
        self.schema = schema
        self._validator = validator

    def validate(self, text: str) -> ContractResult:
        """Parse ``text`` as JSON (whitespace and one fenced block tolerated), then validate it.

        Raises:
            ContractError: The schema refers (``$ref``) to something that does not exist: a
                fault of the contract, not of the output.
        """
        body = text.strip()
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced.group("body").strip()
        try:
            value = json.loads(body, parse_constant=_refuse_constant)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            where = (
                f" at line {exc.lineno}, column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            return ContractResult(
                ok=False,
                errors=[f"$: not valid JSON ({reason}{where}): {_excerpt(text.strip())}"],
                parsed=None,
            )
        from referencing.exceptions import Unresolvable

        try:
            found = sorted(
                self._validator.iter_errors(value), key=lambda e: (e.json_path, e.message)
            )
        except Unresolvable as exc:
            # The schema passed its meta-schema but points at something that is not there.
            raise ContractError(
                self.source, f"the schema cannot be applied: {_shorten(str(exc))}"
            ) from None
        errors = [_shorten(f"{e.json_path}: {e.message}") for e in found]
        return ContractResult(ok=not errors, errors=errors, parsed=value)

    def describe(self) -> str:
        """The schema in words, e.g. ``a JSON object with keys risk (low|medium|high), ...``."""
        return _describe_schema(self.schema, top=True)


class RegexContract(OutputContract):
    """The whole output, stripped or as written, must match a regular expression (``re.DOTALL``)."""

    kind: ContractKind = "regex"

    def __init__(self, source: str, pattern: re.Pattern[str]) -> None:
        super().__init__(source)
        self.pattern = pattern

    def validate(self, text: str) -> ContractResult:
        """``re.fullmatch`` the stripped text, else the text as written (a guided answer whose
        pattern lets it end in a space matches only unstripped)."""
        stripped = text.strip()
        for candidate in (stripped, text):
            if self.pattern.fullmatch(candidate):
                return ContractResult(ok=True, errors=[], parsed=candidate)
        return ContractResult(
            ok=False,
            errors=[
                f"does not match the regular expression {_shorten(self.pattern.pattern)!r}: "
                f"{_excerpt(stripped)}"
            ],
            parsed=None,
        )

    def describe(self) -> str:
        """The pattern itself: ``text matching the regular expression `...```."""
        return f"text matching the regular expression `{self.pattern.pattern}`"


def load_contract(path: Path, root: Path | None = None) -> OutputContract:
    """Load an output contract file.

    A ``.json`` file is a JSON Schema, itself checked against its draft's meta-schema; any other
    file holds one regular expression on its first non-empty line, stripped of surrounding
    whitespace.

    Args:
        path: The contract file.
        root: The project root; errors and :attr:`OutputContract.source` name the file relative
            to it. Without it the path is shown as given.

    Returns:
        A contract whose ``validate`` checks one output.

    Raises:
        ContractError: The file is missing or unreadable, is not JSON, is not a valid JSON
            Schema (names the part of the schema at fault), names an unknown ``$schema``, holds
            no regular expression, or one that does not compile (names the position).
    """
    shown = _shown_path(path, root)
    text = _read_text(path, shown)
    if Path(path).suffix.lower() == ".json":
        return _load_schema(text, shown)
    return _load_regex(text, shown)


def compliance(contract: OutputContract, outputs: list[str]) -> ComplianceReport:
    """Check a batch of outputs against a contract.

    Args:
        contract: The contract.
        outputs: The generated answers, in order.

    Returns:
        The count and share that honour it, and the errors of each one that does not.
    """
    failures: list[tuple[int, list[str]]] = []
    for index, output in enumerate(outputs):
        result = contract.validate(output)
        if not result.ok:
            failures.append((index, result.errors))
    total = len(outputs)
    ok = total - len(failures)
    return ComplianceReport(
        total=total, ok=ok, rate=ok / total if total else 0.0, failures=failures
    )


def _load_schema(text: str, shown: str) -> JsonSchemaContract:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(
            shown, f"not valid JSON at column {exc.colno} ({exc.msg})", line=exc.lineno
        ) from None
    return schema_contract(schema, shown)


def schema_contract(schema: object, source: str) -> JsonSchemaContract:
    """A JSON Schema contract from a schema already parsed (a request's ``response_format``,
    say), checked as a contract file's schema is.

    Args:
        schema: The JSON Schema (an object, or true/false).
        source: Where it came from, named by errors and :attr:`OutputContract.source`.

    Raises:
        ContractError: Not a JSON object, an unknown ``$schema``, or not a valid JSON Schema
            (names the part at fault).
    """
    from jsonschema import exceptions, validators  # type: ignore[import-untyped]

    shown = source
    if not isinstance(schema, dict | bool):
        raise ContractError(
            shown,
            f"a JSON Schema must be a JSON object (or true/false), found {_excerpt(schema)}",
        )
    # Without a default, an unknown $schema only warns and falls back to the latest draft.
    declared = isinstance(schema, dict) and "$schema" in schema
    meta = schema.get("$schema") if isinstance(schema, dict) else None
    if declared and not isinstance(meta, str):
        raise ContractError(shown, f"$schema must be a URI string, found {_excerpt(meta)}")
    cls = validators.validator_for(
        schema, default=None if declared else validators.Draft202012Validator
    )
    if cls is None:
        raise ContractError(
            shown,
            f"unknown $schema {meta!r}; use a JSON Schema draft such as "
            '"https://json-schema.org/draft/2020-12/schema", or leave $schema out',
        )
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as exc:
        raise ContractError(
            shown,
            f"not a valid JSON Schema: at {exc.json_path}: {_shorten(exc.message)}",
        ) from None
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return JsonSchemaContract(shown, schema, validator)


def _load_regex(text: str, shown: str) -> RegexContract:
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        pattern = raw.strip()
        try:
            compiled = re.compile(pattern, re.DOTALL)
        except re.error as exc:
            position = exc.pos if exc.pos is not None else 0
            column = len(raw) - len(raw.lstrip()) + position + 1
            raise ContractError(
                shown,
                f"invalid regular expression at position {position} (column {column}): "
                f"{exc.msg}\n  {pattern}\n  {' ' * position}^",
                line=number,
            ) from None
        return RegexContract(shown, compiled)
    raise ContractError(
        shown,
        "no regular expression: the file is empty; write the pattern on its first line "
        "(or use a .json file for a JSON Schema)",
    )


def _refuse_constant(name: str) -> object:
    """NaN and Infinity are not JSON, though Python's parser accepts them."""
    raise ValueError(f"{name} is not valid JSON")


def _describe_schema(schema: object, top: bool = False) -> str:
    """A schema in a few words; objects list their keys one level deep."""
    if schema is True:
        return "any JSON value"
    if not isinstance(schema, dict):
        return "nothing (the schema accepts no value)" if schema is False else "a JSON value"
    if "enum" in schema:
        return _describe_enum(schema["enum"])
    if "const" in schema:
        return f"exactly {json.dumps(schema['const'], ensure_ascii=False)}"
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        if not isinstance(properties, dict) or not properties:
            return "a JSON object"
        required = set(schema.get("required") or [])
        keys = []
        for name, sub in properties.items():
            detail = _describe_property(sub) if top else ""
            optional = "optional" if name not in required else ""
            extra = "; ".join(part for part in (detail, optional) if part)
            keys.append(f"{name} ({extra})" if extra else name)
        text = f"a JSON object with keys {', '.join(keys)}"
        if top and schema.get("additionalProperties") is False:
            text += "; no other keys"
        return text
    if kind == "array":
        items = schema.get("items")
        return f"a JSON array of {_describe_schema(items)}" if items else "a JSON array"
    return {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "null",
    }.get(kind if isinstance(kind, str) else "", "a JSON value")


def _describe_property(schema: object) -> str:
    """What goes in one key of an object: enums spelt out, strings and numbers with bounds."""
    if not isinstance(schema, dict):
        return ""
    if "enum" in schema:
        return _describe_enum(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None and high is not None:
            return f"string of {low}-{high} characters"
        if high is not None:
            return f"string of at most {high} characters"
        return ""
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{kind} from {low} to {high}"
        return str(kind)
    if kind in ("object", "array", "boolean"):
        return _describe_schema(schema)
    return ""


def _describe_enum(values: object) -> str:
    if not isinstance(values, list):
        return "a JSON value"
    if len(values) <= _SHORT_ENUM and all(isinstance(v, str) and "|" not in v for v in values):
        return "|".join(values)
    return "one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


def _shorten(message: str) -> str:
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 3] + "..."


def _excerpt(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = repr(text)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 4] + "...'"


def _shown_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` as POSIX text, or as given when there is no root."""
    if root is None:
        return Path(path).as_posix()
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _read_text(path: Path, shown: str) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ContractError(
            shown, "output contract not found; expected a .json JSON Schema or a regex file"
        ) from None
    except IsADirectoryError:
        raise ContractError(shown, "is a folder, not an output contract file") from None
    except OSError as exc:
        raise ContractError(shown, f"cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        raise ContractError(
            shown,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8",
            line=data.count(b"\n", 0, exc.start) + 1,
        ) from None


def default_instructions(instructions: str, contract: OutputContract | None) -> str:
    """The system prompt of a behaviour capability: its instructions (or description) and -
    with a contract - exactly what to reply with.

    The same text is used to train its adapter and to serve it, and the base model is evaluated
    with it too, so "base vs adapter" compares the same instructions.
    """
    if contract is None:
        return instructions
    return f"{instructions} Reply with only {contract.describe()}."
