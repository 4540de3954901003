"""The correlation page's range and step: its default range (enough failures), the step rule, the whole steps
analysed, and the sentences that say which were used.

    start_ns, end_ns = default_range(store, now_ns)     # the last 14 days, or the data's whole span when shorter
    first, last, step = analysis_range(start_ns, end_ns)
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

from tsdb.times import format_duration

if TYPE_CHECKING:
    from tsdb.store import Store

#: (longest range in seconds, step in seconds): a finer step sees shorter bursts of load, a coarser one keeps a
#: long range as fast as a short one (a grid of at most about 6,000 steps per host)
STEP_RULES = ((86400, 60), (14 * 86400, 300), (60 * 86400, 900), (math.inf, 3600))


def step_seconds_for(span_seconds: float) -> int:
    """Return the analysis step for a range of span_seconds (STEP_RULES)."""
    return next(step for longest, step in STEP_RULES if span_seconds <= longest)


def step_note(step_seconds: int) -> str:
    """Return the sentence that says which step the analysis uses and why."""
    rules = ", ".join(f"{format_duration(step)} up to {format_duration(longest)}" for longest, step in STEP_RULES[:-1])
    return (f"Load is averaged over {format_duration(step_seconds)} steps: the step follows the range ({rules}, "
            f"{format_duration(STEP_RULES[-1][1])} beyond), so long ranges stay fast; a coarser step blurs short "
            f"bursts of load and can weaken an effect.")


def lag_note(lag_steps, reported: int | None = None) -> str:
    """Return the sentence that says what the lag picked means, and what the other choice would; with both lags
    (correlation_state.BOTH_LAGS), which of them the result reports."""
    if not isinstance(lag_steps, int):
        which = "" if reported is None else f" The result reports lag {reported}, the one with the most evidence."
        return ("Lags 0 and 1: each failure is compared with the load of its own step (which catches load that "
                "lasts less than a step, but also load the failure itself caused) and with the load of the step "
                "before (which the failure cannot have caused); the p-values are adjusted for looking twice." + which)
    if lag_steps == 0:
        return ("Lag 0: each failure is compared with the load of its own step, which catches load that lasts "
                "less than a step but also load the failure itself caused (a hang fills the queue).")
    return (f"Lag {lag_steps}: each failure is compared with the load {'of the step' if lag_steps == 1 else 'steps'} "
            "before its own, so load the failure caused cannot count; load that comes and goes within a step is "
            "missed, and lag 0 may show it.")


def analysis_range(start_ns: int, end_ns: int) -> tuple[int, int, int]:
    """Return (start_ns, end_ns, step_seconds): as many whole steps as fit in the range, ending at the last step
    boundary in it, so a relative range that moves by less than a step keeps the same steps (and cache key).

    ValueError when the range is shorter than one step.
    """
    step = step_seconds_for((end_ns - start_ns) / 1e9)
    step_ns = step * 10**9
    steps = (end_ns - start_ns) // step_ns
    if steps < 1:
        raise ValueError(f"the range of {(end_ns - start_ns) / 1e9:g} s is shorter than one step of {step} s")
    last = end_ns // step_ns * step_ns
    return last - steps * step_ns, last, step




#: the default range: long enough for rare failures (a fleet of dozens of hosts restarts a few times a day)
DEFAULT_RANGE_SECONDS = 14 * 86400
#: the ranges offered when one holds too few failures (seconds, words), shortest first
LONGER_RANGES = ((86400, "the last 24 hours"), (7 * 86400, "the last 7 days"), (14 * 86400, "the last 14 days"),
                 (30 * 86400, "the last 30 days"), (90 * 86400, "the last 90 days"))
SPAN_CACHE_SECONDS = 60.0
_span_lock = threading.Lock()
_data_starts: dict[tuple, tuple[float, int | None]] = {}


def data_start_ns(store: Store, end_ns: int, within_seconds: int = DEFAULT_RANGE_SECONDS) -> int | None:
    """Return the start of the first hour holding daemon data in the `within_seconds` before end_ns, or None.

    One read of hourly counts; kept a minute per store URL (never per id(store): ids are reused).
    """
    key = (store.display_url, within_seconds, end_ns // (3600 * 10**9))
    with _span_lock:
        kept = _data_starts.get(key)
        if kept is not None and time.monotonic() - kept[0] < SPAN_CACHE_SECONDS:
            return kept[1]
    hour_ns = 3600 * 10**9
    start = (end_ns - within_seconds * 10**9) // hour_ns * hour_ns
    frame = store.query("libvirtd", ["up"], start, end_ns, window_seconds=3600, aggregate="count")
    column = next((c for c in frame.columns if c != "time"), None)
    found = None
    if column is not None and len(frame):
        present = frame[frame[column].fillna(0) > 0]
        if len(present):
            first = int(present["time"].min().as_unit("ns").value)
            found = max(first, end_ns - within_seconds * 10**9)
    with _span_lock:
        if len(_data_starts) > 64:
            _data_starts.clear()
        _data_starts[key] = (time.monotonic(), found)
    return found


def default_range(store: Store, now_ns: int) -> tuple[int, int]:
    """Return the page's range when the URL names none: the last 14 days, or the data's whole span when shorter
    (whole minutes, as the URL spells a range)."""
    minute = 60 * 10**9
    end = now_ns // minute * minute
    start = end - DEFAULT_RANGE_SECONDS * 10**9
    first = data_start_ns(store, end)
    if first is not None and first > start:
        start = first // minute * minute
    return start, end


def range_note(first_ns: int, last_ns: int, defaulted: bool) -> str:
    """Return the sentence that says which range was analysed, and why when it is the page's default."""
    import datetime as dt

    def when(time_ns: int) -> str:
        return dt.datetime.fromtimestamp(time_ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")

    text = f"Analysed: {when(first_ns)} to {when(last_ns)} UTC ({format_duration((last_ns - first_ns) / 1e9)})."
    if defaulted:
        text += (" No range was picked, so the page looks at the last 14 days, or all the data when there is less: "
                 "failures are rare, and a few hours seldom hold enough of them.")
    return text


def longer_range_hint(store: Store, hosts: tuple[str, ...], kinds: tuple[str, ...], end_ns: int, span_ns: int,
                      needed: int) -> str:
    """Return a sentence naming the shortest range ending at end_ns (of LONGER_RANGES, longer than span_ns) whose
    failures of `kinds` in the scope reach `needed`, from one read of the events; "" when none is longer."""
    import pandas as pd

    from analysis.signals import kinds_nouns

    longer = [(seconds, words) for seconds, words in LONGER_RANGES if seconds * 10**9 > span_ns]
    if not longer:
        return ""
    where = {"kind": list(kinds), **({"host": list(hosts)} if hosts else {})}
    events = store.events(end_ns - longer[-1][0] * 10**9, end_ns, where=where)
    times = pd.DatetimeIndex(events["time"]).as_unit("ns").asi8 if len(events) else []
    one, many = kinds_nouns(kinds)
    counted = [(words, int((times >= end_ns - seconds * 10**9).sum()) if len(times) else 0)
               for seconds, words in longer]
    for words, count in counted:
        if count >= needed:
            return f"{words[:1].upper()}{words[1:]} would do: {count} {one if count == 1 else many} in that range."
    words, count = counted[-1]
    return f"Even {words} hold only {count} {one if count == 1 else many}."
