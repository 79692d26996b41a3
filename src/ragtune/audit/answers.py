"""One answer per question, in the order of trust: given > measured > inferred.

*Given* is what ``ragtune.yaml`` states. *Measured* comes from the project's files
(:mod:`ragtune.audit.evidence`). *Inferred* comes from the description
(:mod:`ragtune.audit.infer`), or from the other answers when the text says nothing.
"""

from __future__ import annotations

from ragtune.audit import evidence, infer
from ragtune.audit.model import Answer, Answers
from ragtune.prices import Prices
from ragtune.project import Capability, Project

GIVEN = 1.0


def _given(value: object, field: str) -> Answer:
    return Answer(value, "given", GIVEN, f"stated in ragtune.yaml ({field})")


def _inferred(result: infer.Inference) -> Answer:
    return Answer(result.value, "inferred", result.confidence, result.reason)


def resolve_answers(
    project: Project, capability: Capability, *, now: float | None = None
) -> Answers:
    """Answer every audit question for one capability, each with its source and reason."""
    prices = project.config.prices
    files = evidence.source_files(project.root, capability.sources)
    churn = evidence.git_churn(files, now=now) if files else None
    content = evidence.scan_content(files) if files else None
    examples = (
        evidence.scan_examples(project.resolve(capability.examples))
        if capability.examples
        else None
    )

    kind = _kind(capability, examples)
    changes = _changes(capability, str(kind.value), churn, content)
    volume, calls = _volume(
        capability, prices.default_calls_per_month, prices.high_volume_calls_per_month
    )
    shown = _shown(capability, examples, volume)
    return Answers(
        kind=kind,
        changes_within_6_months=changes,
        accurate_in_12_months=_accurate(capability, changes),
        shown_by_examples=shown,
        high_volume=_volume_unless_unshown(volume, shown),
        calls_per_month=calls,
        changes_per_year=_rate(capability, changes, churn, prices),
        system_prompt_tokens=_prompt_tokens(capability),
        prompt_knowledge_tokens=_knowledge_tokens(content, prices),
        knowledge_in_examples=_leak(capability, examples),
    )


def _accurate(capability: Capability, changes: Answer) -> Answer:
    """Accurate in 12 months: given, or what does not change within 6 months."""
    if capability.accurate_in_12_months is not None:
        return _given(capability.accurate_in_12_months, "accurate_in_12_months")
    return Answer(
        not changes.value,
        "inferred",
        round(0.9 * changes.confidence, 2),
        "follows from the 6-month answer: "
        + (
            "what changes within 6 months is stale within 12"
            if changes.value
            else "no change expected within the year"
        ),
    )


def _volume_unless_unshown(volume: Answer, shown: Answer) -> Answer:
    """A behaviour that examples cannot show, with no sure volume, is taken to run at volume."""
    if shown.value is False and volume.source == "inferred" and volume.confidence < 0.5:
        return Answer(
            True,
            "inferred",
            0.5,
            "no volume stated; a behaviour that examples cannot show is assumed to run in "
            "production, across many calls",
        )
    return volume


def _prompt_tokens(capability: Capability) -> Answer:
    """The system prompt's length: given, or stated in the description."""
    if capability.system_prompt_tokens is not None:
        return _given(capability.system_prompt_tokens, "system_prompt_tokens")
    if (stated := infer.system_prompt_tokens(capability.description)) is not None:
        return _inferred(stated)
    return Answer(0, "inferred", 0.5, "no system prompt stated")


def _knowledge_tokens(content: evidence.ContentScan | None, prices: Prices) -> Answer:
    """How many tokens the knowledge would take in the prompt: measured from the sources."""
    if content is not None and content.chars:
        return Answer(
            max(1, content.chars // 4),
            "measured",
            0.9,
            f"{content.files} source files, {content.words:,} words (about 4 characters a token)",
        )
    return Answer(
        prices.knowledge_prompt_tokens,
        "inferred",
        0.4,
        "no readable sources; the documented default (prices.knowledge_prompt_tokens)",
    )


def _leak(capability: Capability, examples: evidence.ExamplesScan | None) -> Answer:
    """The share of examples whose outputs carry figures absent from their inputs."""
    if examples is None:
        return Answer(0.0, "inferred", 0.5, "no examples to scan")
    return Answer(
        round(examples.leak_share, 3),
        "measured",
        0.8,
        f"{examples.leak_share:.0%} of {examples.count} examples in {capability.examples} "
        "carry figures absent from their inputs"
        + (f", e.g. {examples.leak_examples[0]}" if examples.leak_examples else ""),
    )


def _kind(capability: Capability, examples: evidence.ExamplesScan | None) -> Answer:
    if capability.kind is not None:
        return _given(capability.kind, "kind")
    if examples is not None and examples.count >= 5:
        if examples.structure_share >= 0.8 and examples.leak_share < 0.3:
            return Answer(
                "behavior",
                "measured",
                0.75,
                f"{examples.structure_share:.0%} of {examples.count} example outputs share one "
                f"structure ({examples.structure}): a behaviour",
            )
        if examples.leak_share >= 0.5:
            return Answer(
                "knowledge",
                "measured",
                0.65,
                f"{examples.leak_share:.0%} of {examples.count} example outputs carry facts "
                "absent from their inputs: the examples teach knowledge",
            )
    return _inferred(infer.infer_kind(capability.description))


def _changes(
    capability: Capability,
    kind: str,
    churn: evidence.GitChurn | None,
    content: evidence.ContentScan | None,
) -> Answer:
    if capability.changes_within_6_months is not None:
        return _given(capability.changes_within_6_months, "changes_within_6_months")
    if churn is not None:
        if churn.changes_6m:
            return Answer(
                True,
                "measured",
                min(0.95, 0.75 + 0.05 * churn.changes_6m),
                f"git: {churn.changes_6m} commits changed the {churn.files} source files in the "
                f"last 6 months ({churn.changes_12m} in 12)",
            )
        if churn.history_days >= 183:
            return Answer(
                False,
                "measured",
                0.75,
                f"git: no commit changed the {churn.files} source files in the last 6 months "
                f"(history of {churn.history_days:.0f} days)",
            )
    if kind == "knowledge" and content is not None and content.per_1k_words >= 3:
        found = ", ".join(f"{n} {k}" for k, n in content.counts.items() if n)
        return Answer(
            True,
            "measured",
            0.6,
            f"the sources hold {content.per_1k_words:.1f} volatile facts per 1,000 words ({found})",
        )
    return _inferred(infer.infer_changes(capability.description, kind))


def _rate(
    capability: Capability, changes: Answer, churn: evidence.GitChurn | None, prices: Prices
) -> Answer:
    if churn is not None and churn.changes_12m and churn.history_days >= 365:
        return Answer(
            float(churn.changes_12m),
            "measured",
            0.85,
            f"git: {churn.changes_12m} changes to the sources in the last 12 months",
        )
    if churn is not None and churn.changes_6m and churn.history_days >= 30:
        per_year = churn.changes_6m * 365 / min(churn.history_days, 183)
        return Answer(
            round(per_year, 1),
            "measured",
            0.7,
            f"git: {churn.changes_6m} changes in {min(churn.history_days, 183):.0f} days "
            "of history",
        )
    stated = infer.change_rate(capability.description)
    if stated is not None:
        return _inferred(stated)
    if changes.value:
        return Answer(
            prices.changes_per_year_volatile,
            "inferred",
            0.4,
            "changes within 6 months, no rate stated: prices.changes_per_year_volatile",
        )
    return Answer(
        prices.changes_per_year_stable,
        "inferred",
        0.4,
        "stable, no rate stated: prices.changes_per_year_stable",
    )


def _volume(capability: Capability, default_calls: int, threshold: int) -> tuple[Answer, Answer]:
    text = capability.description
    if capability.calls_per_month is not None:
        calls = _given(capability.calls_per_month, "calls_per_month")
        high = capability.calls_per_month >= threshold
        return Answer(
            high,
            "given",
            GIVEN,
            f"calls_per_month {capability.calls_per_month:,} {'>=' if high else '<'} {threshold:,}",
        ), calls
    stated = infer.calls_per_month(text)
    guess = infer.infer_high_volume(text, threshold)
    if stated is not None:
        volume = (
            _inferred(guess)
            if guess is not None
            else Answer(
                int(stated.value) >= threshold,  # type: ignore[call-overload]
                "inferred",
                0.5,
                stated.reason,
            )
        )
        return volume, _inferred(stated)
    if guess is not None:
        calls_value = default_calls if guess.value else max(1, default_calls // 50)
        return _inferred(guess), Answer(
            calls_value,
            "inferred",
            0.4,
            f"no figure stated; {'the default' if guess.value else '1/50 of the default'} "
            "(prices.default_calls_per_month)",
        )
    return (
        Answer(False, "inferred", 0.4, "no volume stated"),
        Answer(default_calls, "inferred", 0.4, "no figure stated; prices.default_calls_per_month"),
    )


def _shown(
    capability: Capability, examples: evidence.ExamplesScan | None, volume: Answer
) -> Answer:
    if capability.shown_by_examples is not None:
        return _given(capability.shown_by_examples, "shown_by_examples")
    if examples is not None and examples.count >= 5:
        if examples.widest_field and examples.widest_field_values >= 10:
            return Answer(
                False,
                "measured",
                0.7,
                f"the example outputs draw on {examples.widest_field_values} values of "
                f"`{examples.widest_field}`: 1-2 examples cannot show that range",
            )
        if examples.structure_share >= 0.8 and examples.median_output_words <= 40:
            return Answer(
                True,
                "measured",
                0.6,
                f"{examples.structure_share:.0%} of {examples.count} outputs share one short "
                f"structure ({examples.structure}; median {examples.median_output_words:.0f} "
                "words): 1-2 examples show it",
            )
    at_volume = bool(volume.value) and (
        capability.calls_per_month is not None or infer.explicit_scale(capability.description)
    )
    stated = infer.infer_shown_by_examples(capability.description, at_volume)
    if stated is not None:
        return _inferred(stated)
    if volume.value and volume.confidence >= 0.5:
        return Answer(
            False,
            "inferred",
            0.55,
            f"no cue about examples; it must hold across many calls ({volume.reason}), where "
            "prompted examples drift",
        )
    return Answer(
        True,
        "inferred",
        0.5,
        "no cue about examples and no sign of volume; try the cheap option first",
    )
