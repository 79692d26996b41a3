"""Each value of the lab's result as the reports show it: shares as percentages, seconds, US
dollars, and "n/a" for a null or NaN metric; Markdown ``code`` spans as HTML."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markupsafe import Markup

    from ragtune.lab.results import Spread

__all__ = [
    "NA",
    "clip",
    "code_spans",
    "missing",
    "pct",
    "plain",
    "score",
    "secs",
    "seed_spread",
    "text_or_na",
    "tokens",
    "usd",
    "yes_no",
]

NA = "n/a"


def missing(value: object) -> bool:
    """Whether a metric is null or NaN: "n/a" in a table, left out of a chart."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: float | None) -> str:
    """A share as a whole percentage: ``0.92`` -> ``"92%"``."""
    return NA if missing(value) else f"{value:.0%}"


def secs(value: float | None) -> str:
    """Seconds with two decimals: ``1.5`` -> ``"1.50 s"``."""
    return NA if missing(value) else f"{value:,.2f} s"


def usd(value: float | None) -> str:
    """US dollars with four decimals."""
    return NA if missing(value) else f"${value:,.4f}"


def tokens(value: float | None) -> str:
    """A token count, rounded to a whole number."""
    return NA if missing(value) else f"{value:,.0f}"


def score(value: float | None) -> str:
    """A fact score with two decimals."""
    return NA if missing(value) else f"{value:.2f}"


def yes_no(value: bool | None) -> str:
    """A flag as "yes" or "no"."""
    return NA if value is None else ("yes" if value else "no")


def text_or_na(value: object) -> str:
    """Any value as text."""
    return NA if value is None else str(value)


def plain(value: object) -> str:
    """A setting's value: null means the lab's default."""
    if value is None:
        return "default"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "none"
    return str(value)


def seed_spread(stats: Spread | None) -> str:
    """A metric over seeds as ``"± 3% (88%-95%)"``."""
    if stats is None or stats.std is None or stats.min is None or stats.max is None:
        return NA
    if any(missing(v) for v in (stats.std, stats.min, stats.max)):
        return NA
    return f"± {stats.std:.0%} ({stats.min:.0%}-{stats.max:.0%})"


def clip(text: object, limit: int) -> str:
    """One line of at most ``limit`` characters, with an ellipsis where it was cut."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def code_spans(text: str) -> Markup:
    """Escaped text, with Markdown ``code`` spans as ``<code>``."""
    from markupsafe import Markup, escape

    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as it is
        return escape(text)
    return Markup("").join(
        Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts)
    )
