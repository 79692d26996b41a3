"""The 30-minute audit as a questionnaire: the questions ``ragtune init`` asks, in order.

The questions are asked through an ``Ask`` callable so that the CLI can use its prompt and a
test (or a script) can answer from a list. Every answer may be left blank ("skip"): the audit
then infers it from the description and the files, and says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ragtune.project import Capability, ProjectConfig

Ask = Callable[[str, str], str]  # (question, default) -> answer
Say = Callable[[str], None]  # a hint shown to the user


@dataclass(frozen=True)
class Question:
    """One question of the questionnaire and the field its answer fills."""

    field: str
    text: str
    choices: tuple[str, ...] = ()  # empty: free text or a number


CAPABILITY_QUESTIONS = (
    Question("description", "Describe the capability in a sentence (what it must know or do)"),
    Question(
        "kind", "Is it about what the model knows or how it behaves?", ("knowledge", "behavior")
    ),
    Question("changes_within_6_months", "Will it change in the next 6 months?", ("yes", "no")),
    Question("accurate_in_12_months", "Will it still be accurate in 12 months?", ("yes", "no")),
    Question("shown_by_examples", "Can 1-2 examples in the prompt show it?", ("yes", "no")),
    Question("calls_per_month", "About how many calls a month?"),
    Question(
        "current_approach",
        "What do you do for it today?",
        ("fine-tune", "prompt", "retrieval", "few-shot", "none"),
    ),
    Question("system_prompt_tokens", "How many system-prompt tokens does it use today?"),
    Question("sources", "Documents for retrieval (comma-separated paths)"),
    Question("examples", "Examples file (JSONL of input/output pairs)"),
    Question("output_contract", "Output contract (JSON Schema or regex file)"),
)

_SKIP = {"", "skip", "?", "-", "don't know", "dont know", "unknown"}


def slug(text: str) -> str:
    """A capability name from free text."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "capability"


def _convert(question: Question, raw: str) -> object | None:
    value = raw.strip()
    if value.lower() in _SKIP:
        return None
    if question.choices:
        lowered = value.lower()
        if lowered not in question.choices:
            raise ValueError(f"answer one of {', '.join(question.choices)} (or leave it blank)")
        if question.choices == ("yes", "no"):
            return lowered == "yes"
        return lowered
    if question.field in ("calls_per_month", "system_prompt_tokens"):
        digits = value.replace(",", "").replace("_", "")
        if not digits.isdigit():
            raise ValueError("answer a whole number (or leave it blank)")
        return int(digits)
    if question.field == "sources":
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def ask_valid(
    ask: Ask, say: Say, question: Question, default: str = "", tries: int = 3
) -> object | None:
    """Ask until the answer converts; after ``tries`` bad answers, treat it as skipped."""
    prompt = question.text + (f" [{'/'.join(question.choices)}]" if question.choices else "")
    for _ in range(tries):
        try:
            return _convert(question, ask(prompt, default))
        except ValueError as exc:
            say(f"  {exc}")
    return None


def run_questionnaire(ask: Ask, say: Say, project_name: str | None = None) -> ProjectConfig:
    """Ask the audit's questions, capability by capability, and return a valid project."""
    name = project_name or ask("Project name", "my-assistant").strip() or "my-assistant"
    capabilities: list[Capability] = []
    while True:
        cap_name = ask("Capability name (blank to finish)", "" if capabilities else "capability")
        cap_name = slug(cap_name) if cap_name.strip() else ""
        if not cap_name:
            if capabilities:
                break
            continue
        if any(c.name == cap_name for c in capabilities):
            say(f"  {cap_name!r} is taken; choose another name")
            continue
        fields: dict[str, object] = {"name": cap_name}
        for question in CAPABILITY_QUESTIONS:
            value = ask_valid(ask, say, question)
            if question.field == "description":
                while value is None:
                    say("  a description is required: the audit reads it")
                    value = ask_valid(ask, say, question)
            if value is not None:
                fields[question.field] = value
        capabilities.append(Capability.model_validate(fields))
    return ProjectConfig(version=1, project=name, capabilities=capabilities)
