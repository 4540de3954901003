"""Table cells of the events and alerts pages: a host's link around a moment, evidence as lines, and the silence
matchers of an alert's labels."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dashboard import views
from dashboard.timerange import search_around

#: where a long evidence line breaks into lines of its own: after a sentence's "; " (the engine's and the agent's
#: causes join their clauses so)
_CLAUSE = re.compile(r";\s+")


def host_link_around(host: str, moment_ns: int, now_ns: int | None = None) -> str:
    """Return the host page's address for a host around a moment (timerange.search_around), "" without a host."""
    return views.host_href(host, search_around(moment_ns, now_ns)) if host else ""


def evidence_lines(text: str) -> list[str]:
    """Return evidence text as its lines: its own line breaks, and each clause after a "; " on a line of its own."""
    lines = []
    for line in (text or "").splitlines():
        parts = _CLAUSE.split(line.rstrip())
        lines.extend([parts[0], *("  " + part for part in parts[1:])] if line.strip() else [""])
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def evidence_text(text: str) -> str:
    """Return evidence text broken into readable lines (evidence_lines), one string for a pre-wrap cell."""
    return "\n".join(evidence_lines(text))


def silence_matchers(labels: Mapping[str, str]) -> str:
    """Return the matchers that silence exactly one alert: name="value" per label, one a line, quoted so that
    alerts.silences.Matcher.parse gives each value back exactly (alertname first, then by name)."""
    from alerts.silences import Matcher

    names = sorted(labels, key=lambda name: (name != "alertname", name))
    return "\n".join(str(Matcher(name, "=", labels[name])) for name in names)


def link_column(field: str, header: str, min_width: int, **extra) -> dict:
    """Return a grid column whose cells link to the row's `<field>_href` (pages_triage.js's VwLink)."""
    return {"field": field, "headerName": header, "minWidth": min_width, "cellRenderer": "VwLink",
            "wrapText": True, "autoHeight": True, "cellClass": "cell-lines", **extra}
