"""A knowledge source behind an API call: counterparty screening status.

In production this calls the screening service; here a small table stands in for it so that the
example runs offline. The function is named in ragtune.yaml as
``tool:tools/counterparties.py:counterparty_status`` and called at query time, never indexed:
its answer is as current as the service behind it.
"""

from __future__ import annotations

from ragtune.knowledge.tools import tool

# Stand-in for the screening service's answers.
_SCREENING = {
    "acme ltd": "Acme Ltd: cleared (no sanctions or adverse-media match), screened 2026-10-02.",
    "globex corporation": "Globex Corporation: review required (adverse-media match, 2026-09-14).",
    "initech gmbh": "Initech GmbH: cleared, screened 2026-11-01.",
}


@tool(description="Sanctions and adverse-media screening status of a counterparty, by name")
def counterparty_status(query: str) -> list[str]:
    """Return the screening status of every known counterparty named in the request."""
    lowered = query.lower()
    found = [status for name, status in _SCREENING.items() if name in lowered]
    return found or [f"No screening record for the counterparty named in: {query!r}."]
