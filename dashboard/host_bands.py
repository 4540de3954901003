"""The host page's cause-and-effect overlay: hang and down intervals as bands, failure events as lines, both drawn
through every panel of the host figure, with the hang's diagnosis beside its band. Pure functions of frames.

An interval opens at hang_start or daemon_down and closes at hang_end or daemon_up (a daemon that goes down while
hung ends the hang: hang_end "or went down"). An interval already open when the range starts (an end event with no
start, or the first window of the range hung or down) starts at the range's start. An interval still open at the
range's end is "ongoing" when the newest libvirtd point still says so (hung, or not up); otherwise it ends at the
first window after its start whose points say the daemon answered again (the agent missed the end event).
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tsdb.schema import EVENT_KINDS, GUEST_FAILURE_KINDS

if TYPE_CHECKING:
    import pandas as pd

#: event kind -> (interval kind, opens): the events that open and close a band
BAND_EVENTS = {"hang_start": ("hang", True), "hang_end": ("hang", False),
               "daemon_down": ("down", True), "daemon_up": ("down", False)}
#: the events drawn as vertical lines through every panel, with their colour and dash: restarts, segfaults and
#: the guest failures (tsdb.schema.GUEST_FAILURE_KINDS)
LINE_EVENTS = {"restart": ("#ef6c00", "dash"), "segfault": ("#c62828", "dot"),
               **{kind: ("#c62828", "dot") for kind in GUEST_FAILURE_KINDS}}
assert set(BAND_EVENTS) | set(LINE_EVENTS) <= set(EVENT_KINDS), "event kinds live in tsdb/schema.py"
#: band colour and the word with its symbol, per interval kind (the word is always shown: colour is never alone)
BAND_STYLE = {"hang": ("#ef6c00", "‖ hung"), "down": ("#c62828", "✖ down")}
#: the most bands that carry their diagnosis as text on the figure (the newest); older ones carry it on hover
NOTED_BANDS_MAX = 3
#: characters per line of a cause written beside its band
CAUSE_LINE_CHARS = 52
#: lines of a cause written beside its band (the rest is on hover and in the list under the figure)
CAUSE_LINES_MAX = 5


@dataclass(frozen=True)
class Interval:
    """A stretch of time libvirtd was hung or down, clipped to the range; `cause` is the hang's newest diagnosis."""

    kind: str  # "hang" or "down"
    start_ns: int
    end_ns: int
    ongoing: bool
    cause: str = ""

    @property
    def seconds(self) -> float:
        """How long the interval lasted within the range."""
        return (self.end_ns - self.start_ns) / 10**9


@dataclass(frozen=True)
class EventLine:
    """A failure event drawn as a vertical line: its time, kind and the hover text (hostile text escaped)."""

    time_ns: int
    kind: str
    text: str


def intervals(events: pd.DataFrame, health: pd.DataFrame, latest: dict[str, float | None],
              start_ns: int, end_ns: int) -> list[Interval]:
    """Return the hang and down intervals of the range, oldest first, from the host's events (any order), its
    health windows (columns time, up, hung) and its newest libvirtd point (`latest`: up, hung)."""
    found: list[Interval] = []
    open_at: dict[str, int | None] = {"hang": None, "down": None}
    first = _first_state(health)
    for kind, word in (("hang", "hung"), ("down", "up")):
        value = first.get(word)
        if value is not None and (value == 1 if kind == "hang" else value == 0):
            open_at[kind] = start_ns
    # the first window's worst value may come from an interval that its own start event opens within it
    first_window_end = int(health["time"].iloc[1].value) if len(health) > 1 else end_ns
    rows = events[events["kind"].isin(list(BAND_EVENTS))] if len(events) else events
    for when, event_kind in sorted((int(t.value), k) for t, k in zip(rows["time"], rows["kind"])) if len(rows) else ():
        kind, opens = BAND_EVENTS[event_kind]
        if opens:
            if kind == "down" and open_at["hang"] is not None:
                found.append(Interval("hang", open_at["hang"], when, False))
                open_at["hang"] = None
            if open_at[kind] is None or (open_at[kind] == start_ns and when < first_window_end):
                open_at[kind] = when
        else:
            began = open_at[kind] if open_at[kind] is not None else start_ns
            if when > began:
                found.append(Interval(kind, began, when, False))
            open_at[kind] = None
    for kind, began in open_at.items():
        if began is None:
            continue
        if _still(kind, latest):
            found.append(Interval(kind, began, end_ns, True))
        else:
            found.append(Interval(kind, began, _answered_after(kind, health, began, end_ns), False))
    return sorted(found, key=lambda i: (i.start_ns, i.kind))


def _first_state(health: pd.DataFrame) -> dict[str, float | None]:
    """Return the up and hung values of the range's first health window that has them."""
    state: dict[str, float | None] = {}
    for word in ("up", "hung"):
        if word in health and health[word].notna().any():
            state[word] = float(health.loc[health[word].notna(), word].iloc[0])
    return state


def _still(kind: str, latest: dict[str, float | None]) -> bool:
    """Return whether the newest libvirtd point still shows the interval (hung, or not up); True without one."""
    value = latest.get("hung" if kind == "hang" else "up")
    if value is None or value != value:
        return True
    return value == 1 if kind == "hang" else value == 0


def _answered_after(kind: str, health: pd.DataFrame, began_ns: int, end_ns: int) -> int:
    """Return the start of the first health window after `began_ns` whose points show the daemon answering."""
    column, fine = ("hung", 0) if kind == "hang" else ("up", 1)
    if column not in health or health.empty:
        return end_ns
    times = health["time"].astype("int64")
    after = health[(times > began_ns) & (health[column] == fine)]
    return int(after["time"].iloc[0].value) if len(after) else end_ns


def with_causes(found: list[Interval], diagnoses: pd.DataFrame, window_seconds: int) -> list[Interval]:
    """Return the intervals with each hang's newest cause: the newest diagnosis (columns time, cause) whose window
    lies within the hang (a window that starts up to one window before it counts: a point is stamped at its
    window's start, and the agent may write the diagnosis a moment before the event)."""
    from dataclasses import replace

    if diagnoses.empty or "cause" not in diagnoses:
        return found
    rows = diagnoses.dropna(subset=["cause"]).sort_values("time", kind="mergesort")
    times = rows["time"].astype("int64").tolist()
    causes = rows["cause"].tolist()
    out = []
    for interval in found:
        cause = ""
        if interval.kind == "hang":
            for when, text in zip(times, causes):
                if interval.start_ns - window_seconds * 10**9 <= when <= interval.end_ns and isinstance(text, str):
                    cause = text
        out.append(replace(interval, cause=cause) if cause else interval)
    return out


def event_lines(events: pd.DataFrame) -> list[EventLine]:
    """Return the failure events drawn as lines through every panel, oldest first."""
    if events.empty:
        return []
    rows = events[events["kind"].isin(list(LINE_EVENTS))].sort_values("time", kind="mergesort")
    lines = []
    for when, kind, domain, message in zip(rows["time"], rows["kind"], rows["domain"], rows["message"]):
        head = f"{kind} ({domain})" if isinstance(domain, str) and domain else kind
        text = f"{head}: {message}" if isinstance(message, str) and message else head
        lines.append(EventLine(int(when.value), kind, escaped_lines(text)))
    return lines


def escaped_lines(text: str, width: int = CAUSE_LINE_CHARS, most: int | None = None) -> str:
    """Return text for plotly: markup escaped (plotly reads a few tags), broken into lines of about `width`
    characters at its clauses ("; ") and spaces, at most `most` lines (the last one ends with "…")."""
    lines: list[str] = []
    for clause in text.replace("\r", " ").replace("\n", "; ").split("; "):
        lines.extend(textwrap.wrap(clause, width, break_long_words=True, break_on_hyphens=False) or [""])
    if most is not None and len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "<br>".join(html.escape(line, quote=False) for line in lines)


def band_title(interval: Interval, duration_text: str) -> str:
    """Return a band's first line: the word, how long, and whether it still lasts."""
    _colour, word = BAND_STYLE[interval.kind]
    return f"{word} {duration_text}" + (" · ongoing" if interval.ongoing else "")


def band_shapes(found: list[Interval], panels: list[str]) -> list[dict[str, Any]]:
    """Return one shaded rectangle per interval per panel (`panels`: the panels' y axis names, "y", "y2"...)."""
    shapes = []
    for interval in found:
        colour, _word = BAND_STYLE[interval.kind]
        x0, x1 = _iso(interval.start_ns), _iso(interval.end_ns)
        for axis in panels:
            shapes.append({"type": "rect", "xref": "x", "x0": x0, "x1": x1, "yref": f"{axis} domain", "y0": 0,
                           "y1": 1, "fillcolor": colour, "opacity": 0.14, "line": {"width": 0}, "layer": "below",
                           "name": f"band-{interval.kind}"})
    return shapes


def line_shapes(lines: list[EventLine], panels: list[str]) -> list[dict[str, Any]]:
    """Return one vertical line per event per panel."""
    shapes = []
    for line in lines:
        colour, dash = LINE_EVENTS[line.kind]
        when = _iso(line.time_ns)
        for axis in panels:
            shapes.append({"type": "line", "xref": "x", "x0": when, "x1": when, "yref": f"{axis} domain", "y0": 0,
                           "y1": 1, "line": {"color": colour, "width": 1.2, "dash": dash}, "opacity": 0.75,
                           "name": f"line-{line.kind}"})
    return shapes


def band_notes(found: list[Interval], duration_text, start_ns: int, end_ns: int, axis: str) -> list[dict[str, Any]]:
    """Return the label beside each band, at the top of the panel of `axis`: its title and, for the newest
    NOTED_BANDS_MAX, the cause in short lines (the whole cause is the label's hover text). A band in the range's
    left part is labelled from its start rightwards, one further right from its end leftwards; neighbouring labels
    alternate between the panel's top and bottom, so they do not cover each other."""
    notes = []
    for index, interval in enumerate(found):
        colour, _word = BAND_STYLE[interval.kind]
        title = band_title(interval, duration_text(interval.seconds))
        text = f"<b>{html.escape(title, quote=False)}</b>"
        if interval.cause and index >= len(found) - NOTED_BANDS_MAX:
            text += "<br>" + escaped_lines(interval.cause, most=CAUSE_LINES_MAX)
        left = interval.start_ns < start_ns + (end_ns - start_ns) * 0.6
        top = index % 2 == (len(found) - 1) % 2  # neighbours alternate top and bottom, the newest on top
        notes.append({"xref": "x", "x": _iso(interval.start_ns if left else interval.end_ns),
                      "xanchor": "left" if left else "right", "yref": f"{axis} domain", "y": 1 if top else 0,
                      "yanchor": "top" if top else "bottom",
                      "text": text, "showarrow": False, "align": "left", "font": {"size": 11, "color": "#1d232b"},
                      "bgcolor": "rgba(255,255,255,0.88)", "bordercolor": colour, "borderwidth": 1, "borderpad": 3,
                      "hovertext": escaped_lines(f"{title}: {interval.cause or 'no diagnosis'}"),
                      "name": f"note-{interval.kind}"})
    return notes


def _iso(time_ns: int) -> str:
    """Return a time as an ISO string in UTC for a figure."""
    import pandas as pd

    return pd.Timestamp(time_ns, unit="ns", tz="UTC").isoformat()


@dataclass(frozen=True)
class FdDrop:
    """A restart that freed descriptors: when, and the open fds in the window before it and the one after."""

    time_ns: int
    fds_before: float
    fds_after: float


#: a restart "ended a leak" on the fds panel when the descriptors fell to at most this share of their value before
FD_DROP_SHARE = 0.5
#: windows before a restart that may hold the old process's last fds (a point may land just before or after it)
FD_DROP_WINDOWS = 3


def fd_drops(lines: list[EventLine], health: pd.DataFrame) -> list[FdDrop]:
    """Return the restarts after which open fds fell to at most FD_DROP_SHARE of what they were: the most of the
    FD_DROP_WINDOWS windows up to the one holding the restart (the old process's) against the first window after."""
    if "open_fds" not in health or health["open_fds"].isna().all():
        return []
    known = health.dropna(subset=["open_fds"])
    times = known["time"].astype("int64").tolist()
    values = known["open_fds"].tolist()
    drops = []
    for line in lines:
        if line.kind != "restart":
            continue
        before = [v for t, v in zip(times, values) if t <= line.time_ns][-FD_DROP_WINDOWS:]
        after = [v for t, v in zip(times, values) if t > line.time_ns][:1]
        if before and after and max(before) > 0 and after[0] <= max(before) * FD_DROP_SHARE:
            drops.append(FdDrop(line.time_ns, float(max(before)), float(after[0])))
    return drops
