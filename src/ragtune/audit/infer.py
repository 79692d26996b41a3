"""Answers from the description: what a capability's own words say when the project file is silent.

Each question is scored from weighted cues (regular expressions over the lower-cased
description). A cue is a phrase pattern, not a single keyword: "questions about", "look up",
"in stock" for knowledge; "in the format", "house style", "turn X into" for behaviour; negated
mentions of examples ("examples can't fully show it") count against few-shot. The matched words
become the answer's reason, so a user sees what the inference rests on and can overrule it by
giving the answer in ``ragtune.yaml``. The cue tables are in :mod:`ragtune.audit.cues`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ragtune.audit import cues
from ragtune.audit.cues import Cue


@dataclass(frozen=True)
class Inference:
    """An answer inferred from text: the value, a confidence in [0, 1] and the words it rests on."""

    value: object
    confidence: float
    reason: str


@dataclass(frozen=True)
class Score:
    """Weighted cue hits for one side of a question."""

    total: float
    hits: tuple[str, ...]


def normalise(text: str) -> str:
    """Lower-case, straight quotes, single spaces."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-")
    return " ".join(text.lower().split())


def score(text: str, table: list[Cue]) -> Score:
    """Sum the weights of the cues of ``table`` found in ``text``; remember the words that matched."""
    total = 0.0
    hits: list[str] = []
    for pattern, weight in table:
        found = [m.group(0).strip() for m in pattern.finditer(text)]
        if found:
            # A cue counts once more for each extra distinct hit, with diminishing weight.
            distinct = list(dict.fromkeys(found))
            total += weight * (1 + 0.3 * (len(distinct) - 1))
            hits.extend(distinct)
    return Score(total, tuple(dict.fromkeys(hits)))


def _quote(hits: tuple[str, ...], limit: int = 4) -> str:
    short = [h if len(h) <= 40 else h[:37] + "..." for h in hits[:limit]]
    return ", ".join(f'"{h}"' for h in short)


def _confidence(margin: float) -> float:
    """Map a score margin to a confidence between 0.5 and 0.95."""
    return round(0.5 + 0.45 * (1 - math.exp(-abs(margin) / 3)), 2)


def infer_kind(description: str) -> Inference:
    """Knowledge (what the model knows) or behaviour (how it behaves), from the description."""
    text = normalise(description)
    know = score(text, cues.KNOWLEDGE)
    behave = score(text, cues.BEHAVIOR)
    if know.total == 0 and behave.total == 0:
        return Inference(
            "behavior",
            0.4,
            "no cue of either in the description, and it names no facts, documents or data to "
            "know: read as a behaviour",
        )
    if behave.total > know.total:
        return Inference(
            "behavior",
            _confidence(behave.total - know.total),
            f"behaviour cues {_quote(behave.hits)} outweigh knowledge cues"
            + (f" {_quote(know.hits, 2)}" if know.hits else ""),
        )
    return Inference(
        "knowledge",
        _confidence(know.total - behave.total),
        f"knowledge cues {_quote(know.hits)}"
        + (f" outweigh behaviour cues {_quote(behave.hits, 2)}" if behave.hits else ""),
    )


def change_rate(description: str) -> Inference | None:
    """Changes per year stated in the description ("updated quarterly" -> 4), if any."""
    text = normalise(description)
    for pattern, rate in cues.FREQUENCIES:
        for match in pattern.finditer(text):
            # "updated quarterly" is a rate of change; "an hourly rate" or "the weekly summary"
            # is not: a frequency counts only next to a verb of change.
            near = text[max(0, match.start() - 50) : match.end() + 30]
            if cues.CHANGE_VERB.search(near):
                return Inference(rate, 0.7, f'"{match.group(0)}" -> about {rate:g} changes a year')
    for pattern, rate in cues.SELF_DATED:
        if dated := pattern.search(text):
            return Inference(rate, 0.6, f'"{dated.group(0)}" -> about {rate:g} changes a year')
    return None


def infer_changes(description: str, kind: str) -> Inference:
    """Will it change within 6 months? Knowledge reads volatility from what it is about;
    a behaviour only from words saying that it changes."""
    text = normalise(description)
    stable = score(text, cues.STABLE)
    change_verbs = tuple(dict.fromkeys(m.group(0) for m in cues.CHANGE_VERB.finditer(text)))
    rate = change_rate(description)
    if kind == "behavior":
        # A behaviour changes only when the text says so: "the team rewrites it every month".
        recurrence = tuple(dict.fromkeys(m.group(0) for m in cues.RECURRENCE.finditer(text)))
        unsettled = tuple(dict.fromkeys(m.group(0) for m in cues.UNSETTLED.finditer(text)))
        signals = list(unsettled) + list(change_verbs) + list(recurrence)
        if rate is not None and rate.value >= 2:  # type: ignore[operator]
            signals.append(rate.reason.split(" ->")[0].strip('"'))
        recurring = change_verbs and len(signals) > len(change_verbs)
        if (unsettled or recurring) and stable.total < 2:
            return Inference(
                True,
                0.75,
                f"the description says the behaviour changes: {_quote(tuple(signals))}",
            )
        why = f"stability cues {_quote(stable.hits)}" if stable.hits else "no sign that it changes"
        return Inference(False, 0.7 if stable.hits else 0.6, f"{why}; behaviour is usually stable")
    volatile = score(text, cues.VOLATILE_KNOWLEDGE)
    slow = rate is not None and float(rate.value) < 1  # type: ignore[arg-type]
    if slow:
        # "revised every five years": a change verb, but a stable answer.
        stable = Score(stable.total + 3.0, (*stable.hits, rate.reason.split(" ->")[0].strip('"')))  # type: ignore[union-attr]
    v_total = (
        volatile.total
        + (2.0 if change_verbs and not slow else 0.0)
        + (
            2.0 if rate is not None and float(rate.value) >= 2 else 0.0  # type: ignore[arg-type]
        )
    )
    hits = volatile.hits + change_verbs
    if stable.total > v_total:
        return Inference(
            False,
            _confidence(stable.total - v_total),
            f"stability cues {_quote(stable.hits)}",
        )
    if v_total == 0:
        return Inference(
            True,
            0.5,
            "no cue either way; business knowledge usually changes, so assume it does "
            "(the safe side: it stays out of the weights)",
        )
    return Inference(
        True, _confidence(v_total - stable.total + 1), f"volatility cues {_quote(hits)}"
    )


def infer_shown_by_examples(description: str, at_volume: bool = False) -> Inference | None:
    """Can 1-2 examples show the behaviour? ``None`` when the text gives no cue either way.

    ``at_volume``: the capability clearly runs across thousands of calls, where a prompted
    example drifts; that counts against "examples show it".
    """
    text = normalise(description)
    failed = tuple(dict.fromkeys(m.group(0) for m in cues.EXAMPLES_FAIL.finditer(text)))
    shown = score(cues.EXAMPLES_FAIL.sub(" ", text), cues.SHOWN)
    not_shown = score(text, cues.NOT_SHOWN)
    not_total = not_shown.total + 4.0 * len(failed) + (1.5 if at_volume else 0.0)
    hits_not = failed + not_shown.hits + (("thousands of calls",) if at_volume else ())
    if shown.total == 0 and not_total == 0:
        return None
    if shown.total > not_total:
        return Inference(True, _confidence(shown.total - not_total), f"cues {_quote(shown.hits)}")
    if not_total > shown.total:
        return Inference(False, _confidence(not_total - shown.total), f"cues {_quote(hits_not)}")
    return None


# -- figures stated in the text: counts, rates, prompt lengths ------------------------------------

_NUMBER = re.compile(
    r"(?<![\w.,])((?>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?))(?![\d,.]\d)\s*(k|m|million|thousand|billion|bn)?\b(?!-token|\s*tokens?|\s*characters|-step|-field|-page|%)"
)
_PER_UNIT = re.compile(
    r"\b(a|an|per|each|every)\s+(hour|day|night|week|month|year|quarter)\b|\b(hourly|daily|nightly|weekly|monthly|yearly|annually|quarterly)\b"
)
_UNIT_PER_MONTH = {
    "hour": 730.0,
    "hourly": 730.0,
    "day": 30.0,
    "daily": 30.0,
    "night": 30.0,
    "nightly": 30.0,
    "week": 4.33,
    "weekly": 4.33,
    "month": 1.0,
    "monthly": 1.0,
    "quarter": 1 / 3,
    "quarterly": 1 / 3,
    "year": 1 / 12,
    "yearly": 1 / 12,
    "annually": 1 / 12,
}
_MULTIPLIER = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "billion": 1e9, "bn": 1e9}
_PROMPT_TOKENS = re.compile(
    r"(\d{1,3}(?:,\d{3})+|\d+)\s*(k)?[- ]tokens?\b[^.;]{0,40}|(\d{1,3}(?:,\d{3})+|\d+)\s*(k)?[- ]token\b"
)


_QUANTITY_WORDS = {
    "hundreds of thousands": 200_000.0,
    "tens of thousands": 20_000.0,
    "millions": 2_000_000.0,
    "thousands": 2_000.0,
    "hundreds": 200.0,
    "dozens": 24.0,
    "a dozen": 12.0,
}
_QUANTITY = re.compile(r"\b(" + "|".join(_QUANTITY_WORDS) + r")\b")
_SMALL_NUMBERS = {
    "a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "twenty": 20, "fifty": 50, "a few": 3, "several": 5,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_WORD_COUNT = re.compile(
    r"\b("
    + "|".join(_SMALL_NUMBERS)
    + r") ("
    + "|".join(_SCALES)
    + r")( (thousand|million))?\b(?! of)"
)


def _quantities(text: str) -> list[tuple[int, int, float, str]]:
    """(start, end, value, shown) of every count in the text, years left out, in order."""
    found = []
    for match in _NUMBER.finditer(text):
        number = float(match.group(1).replace(",", ""))
        if match.group(2):
            number *= _MULTIPLIER[match.group(2)]
        elif 1900 <= number <= 2100 and "," not in match.group(1):
            continue  # a year, not a volume
        found.append((match.start(), match.end(), number, match.group(0).strip()))
    for match in _QUANTITY.finditer(text):
        found.append((match.start(), match.end(), _QUANTITY_WORDS[match.group(1)], match.group(1)))
    for match in _WORD_COUNT.finditer(text):
        value = float(_SMALL_NUMBERS[match.group(1)] * _SCALES[match.group(2)])
        if match.group(4):
            value *= _SCALES[match.group(4)]  # "a hundred thousand"
        found.append((match.start(), match.end(), value, match.group(0)))
    return sorted(found)


def calls_per_month(description: str) -> Inference | None:
    """A volume stated in the description ("50k daily replies" -> 1.5M a month), if any."""
    text = normalise(description)
    best: tuple[float, str] | None = None
    counts = _quantities(text)
    for i, (start, end, number, shown) in enumerate(counts):
        # The rate belongs to the nearest count: "60 branches, thousands per month" is thousands.
        stop = counts[i + 1][0] if i + 1 < len(counts) else len(text)
        begin = counts[i - 1][1] if i else 0
        window = text[end : min(end + 60, stop)]
        before = text[max(begin, start - 20) : start]
        unit = _PER_UNIT.search(before + " " + window)
        if unit is None:
            continue
        word = unit.group(2) or unit.group(3)
        monthly = number * _UNIT_PER_MONTH[word]
        if best is None or monthly > best[0]:
            best = (monthly, f'"{shown} ... {unit.group(0)}"')
    if best is None:
        return None
    return Inference(round(best[0]), 0.75, f"{best[1]} -> about {best[0]:,.0f} calls a month")


def big_numbers(description: str) -> list[str]:
    """Counts of a thousand or more in the text (volume without a rate): "200k-SKU"."""
    return [shown for _, _, value, shown in _quantities(normalise(description)) if value >= 1000]


def explicit_scale(description: str, threshold: int = 1000) -> bool:
    """Does the text state a scale of thousands (a figure, or "at scale"), not just "each"?"""
    stated = calls_per_month(description)
    if stated is not None and int(stated.value) >= threshold:  # type: ignore[call-overload]
        return True
    return bool(big_numbers(description)) or bool(cues.SCALE_WORDS.search(normalise(description)))


def infer_high_volume(description: str, threshold: int = 1000) -> Inference | None:
    """Must it hold across thousands of calls? ``None`` when the text says nothing of volume.

    A stated rate decides alone when it is clearly high (``>= threshold`` calls a month) or
    clearly low (under a tenth of it). In between - "thousands a year", "hundreds a week" - it
    is weighed with the other cues: thousands of calls a year still call for consistency.
    """
    stated = calls_per_month(description)
    if stated is not None:
        value = int(stated.value)  # type: ignore[call-overload]
        if value >= threshold or value < threshold / 10:
            return Inference(value >= threshold, 0.8, stated.reason)
    text = normalise(description)
    high = score(text, cues.HIGH_VOLUME)
    big = big_numbers(description)
    high_total = high.total + 2.5 * bool(big)
    low = score(text, cues.LOW_VOLUME)
    if stated is not None:
        # A moderate stated volume counts a little against "thousands of calls".
        low = Score(low.total + 1.5, (stated.reason, *low.hits))
    if high_total == 0 and low.total == 0:
        return None
    if high_total > low.total:
        hits = tuple(big) + high.hits
        return Inference(True, _confidence(high_total - low.total), f"cues {_quote(hits)}")
    if low.total > high_total:
        return Inference(False, _confidence(low.total - high_total), f"cues {_quote(low.hits)}")
    return None


def system_prompt_tokens(description: str) -> Inference | None:
    """A prompt length stated in the description ("our 1,800-token system prompt"), if any."""
    text = normalise(description)
    for match in _PROMPT_TOKENS.finditer(text):
        digits = match.group(1) or match.group(3)
        k = match.group(2) or match.group(4)
        tokens = int(digits.replace(",", "")) * (1000 if k else 1)
        if "prompt" in text or "context" in text:
            return Inference(tokens, 0.7, f'"{match.group(0).strip()}"')
    return None
