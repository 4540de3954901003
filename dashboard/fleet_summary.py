"""The fleet's summary strip: how many hosts are in each kind of trouble, counted from the fleet frame itself, each
count a link to the hosts it counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Part:
    """One count of the strip: its text ("2 pages firing"), how bad (bad or warn), and the filter that shows the
    hosts it counts: a host status (the page's `status` parameter) or a trouble (its `show` parameter,
    dashboard.fleet_table.SHOWS)."""

    count: int
    text: str
    tone: str
    status: str | None = None
    show: str | None = None


def summarize(frame: pd.DataFrame) -> list[Part]:
    """Return the strip's counts of a fleet frame (dashboard.data.fleet_frame), worst first, leaving out what
    counts none: hosts down and hung, firing pages and other firing alerts, hosts over budget, with an fd leak,
    with memory growing, with failures in the range, silent at its end."""
    from dashboard.fleet_table import SHOWS, prepared

    if frame.empty:
        return []
    table = prepared(frame)
    status = table["status"]
    pages = int(table["pages_firing"].sum())
    others = int(table["alerts_firing"].sum()) - pages

    def hosts(show: str) -> int:
        return int(SHOWS[show](table).fillna(False).sum())

    counts = [
        (int((status == "down").sum()), "down", "down", "bad", "down", None),
        (int((status == "hung").sum()), "hung", "hung", "bad", "hung", None),
        (pages, "page firing", "pages firing", "bad", None, "paging"),
        (others, "other alert firing", "other alerts firing", "warn", None, "firing"),
        (hosts("over-budget"), "host over budget", "hosts over budget", "warn", None, "over-budget"),
        (hosts("fd-leak"), "fd leak", "fd leaks", "warn", None, "fd-leak"),
        (hosts("memory-growing"), "host's memory growing", "hosts' memory growing", "warn", None, "memory-growing"),
        (hosts("failures"), "host with failures", "hosts with failures", "warn", None, "failures"),
        (int((status == "no data").sum()), "no data", "no data", "warn", "no data", None),
    ]
    return [Part(count, f"{count} {one if count == 1 else many}", tone, status_filter, show)
            for count, one, many, tone, status_filter, show in counts if count > 0]


def strip(frame: pd.DataFrame, search: str = "", showing: list[str] | tuple = ()) -> object:
    """Return the strip as page content: each count a link to the hosts it counts (the page's status or show
    filter, in place of those set now); "All N hosts healthy" when nothing counts; a link back to every host while
    a trouble is shown."""
    from dash import dcc, html

    from dashboard.timerange import with_page_params

    parts = summarize(frame)
    children: list = []
    if not parts:
        hosts = f"{len(frame)} host" if len(frame) == 1 else f"{len(frame)} hosts"
        children.append(html.Span(f"✔ All {hosts} healthy", className="summary-ok"))
    for index, part in enumerate(parts):
        if index:
            children.append(html.Span(" · ", className="summary-sep"))
        symbol = "✖ " if part.tone == "bad" else "▲ "
        href = with_page_params(search, {"status": [part.status] if part.status else [],
                                         "show": [part.show] if part.show else []})
        children.append(dcc.Link(symbol + part.text, href="/" + href, className=f"summary-part summary-{part.tone}"))
    if showing:
        children.append(dcc.Link(f"showing only: {', '.join(showing)} · show every host",
                                 href="/" + with_page_params(search, {"show": []}), className="summary-all"))
    return html.Div(children, className="fleet-summary", role="status")
