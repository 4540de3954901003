"""The host page's pieces around its figure: the leak warning and the list of hangs and outages with their causes
(text in Dash components, so React escapes whatever a name or a cause holds)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dash import html

from tsdb.times import format_duration as duration_text
from dashboard.host_bands import band_title

if TYPE_CHECKING:
    from dashboard.host_bands import Interval
    from dashboard.host_data import LeakView

#: the most intervals the list under the warning names (the newest); the figure draws them all
INTERVALS_LISTED_MAX = 10
RESOURCE_WORDS = {"fds": "file descriptors", "rss": "resident memory"}


def leak_warning(leak: LeakView) -> html.Div | None:
    """Return the warning that libvirtd leaks (each sign's sentence with its figures), or None without a sign."""
    if not leak.signs:
        return None
    items = [html.Li([html.Strong(f"{RESOURCE_WORDS.get(sign.resource, sign.resource)}: "), sign.summary],
                     className=f"leak-sign leak-{sign.resource}") for sign in leak.signs]
    note = "The dashed red line on the fds panel projects the descriptors to their limit." \
        if leak.sign("fds") is not None and leak.forecast is not None and leak.forecast.seconds_to_limit is not None \
        else ""
    return html.Div([html.Div("▲ Leak warning: libvirtd", className="leak-title"), html.Ul(items),
                     html.P(note, className="leak-note") if note else None],
                    id="host-leak", className="leak-warning", role="alert")


def interval_list(found: list[Interval]) -> html.Div | None:
    """Return the hangs and outages of the range, newest first, each with its time, length and cause."""
    if not found:
        return None
    import pandas as pd

    shown = sorted(found, key=lambda i: i.start_ns, reverse=True)[:INTERVALS_LISTED_MAX]
    items = []
    for interval in shown:
        start = pd.Timestamp(interval.start_ns, unit="ns", tz="UTC")
        end = "now" if interval.ongoing else f"{pd.Timestamp(interval.end_ns, unit='ns', tz='UTC'):%H:%M:%S}"
        head = f"{band_title(interval, duration_text(interval.seconds))} · {start:%Y-%m-%d %H:%M:%S} → {end} UTC"
        body = [html.Div(head, className="interval-head")]
        if interval.cause:
            body.append(html.Div(interval.cause, className="interval-cause"))
        elif interval.kind == "hang":
            body.append(html.Div("no diagnosis in the range", className="interval-cause muted"))
        items.append(html.Li(body, className=f"interval interval-{interval.kind}"))
    more = len(found) - len(shown)
    return html.Div([html.Ul(items), html.P(f"and {more} older", className="section-note") if more else None],
                    id="host-intervals", className="host-intervals")
