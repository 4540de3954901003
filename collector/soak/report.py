"""What a soak tells a person: the progress line while it runs and the summary table at the end.

The table's last column reads the `event` points a virtwatch agent running alongside wrote for the same host
during each step (daemon_down, hang_start, restart, segfault...); a step with no `libvirtd` point of that
host near it says "no agent data".
"""

from __future__ import annotations

import collections
import math
import time
from typing import TextIO

from collector.soak.recorder import StepTally
from tsdb import Store, StoreError

#: how far around a step an agent's libvirtd point still shows it was running (its default interval is 10 s)
AGENT_MARGIN_NS = 30 * 10**9
TTY_EVERY_SECONDS = 0.5
PLAIN_EVERY_SECONDS = 10.0
HEADER = ("step", "clients", "seconds", "calls", "calls/s", "p50 ms", "p99 ms", "errors", "daemon events")


def minutes(seconds: float) -> str:
    """Return seconds as M:SS."""
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_text(steps: list[StepTally], total_steps: int, errors_total: int, elapsed_seconds: float,
                  planned_seconds: float, now_seconds_in_step: float) -> str:
    """Return the progress line: step, clients, calls/s of the step so far, errors so far, elapsed/total."""
    if not steps:
        return f"soak starting, {minutes(elapsed_seconds)}/{minutes(planned_seconds)}"
    step = steps[-1]
    rate = step.tally.calls / now_seconds_in_step if now_seconds_in_step > 0 else 0.0
    clients = f"{step.clients} client{'' if step.clients == 1 else 's'}"
    return (f"soak step {step.index + 1}/{total_steps}: {clients}, {rate:.1f} calls/s, "
            f"{errors_total} errors, {minutes(elapsed_seconds)}/{minutes(planned_seconds)}")


class ProgressLine:
    """The progress line on a stream: rewritten in place on a terminal, a new line every 10 s otherwise."""

    def __init__(self, stream: TextIO, total_steps: int, planned_seconds: float, is_tty: bool | None = None,
                 clock=time.monotonic):
        self.stream = stream
        self.total_steps = total_steps
        self.planned_seconds = planned_seconds
        self.is_tty = stream.isatty() if is_tty is None else is_tty
        self.clock = clock
        self._last: float | None = None
        self._dirty = False

    def update(self, soak, elapsed_seconds: float) -> None:
        """Show the soak's progress if it is time to (the Soak's on_tick hook)."""
        now = self.clock()
        every = TTY_EVERY_SECONDS if self.is_tty else PLAIN_EVERY_SECONDS
        if self._last is not None and now - self._last < every:
            return
        self._last = now
        steps = soak.recorder.steps
        in_step = (time.time_ns() - steps[-1].start_ns) / 1e9 if steps else 0.0
        text = progress_text(steps, self.total_steps, soak.recorder.errors_total, elapsed_seconds,
                             self.planned_seconds, in_step)
        if self.is_tty:
            self.stream.write("\r" + text + "\x1b[K")
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the line rewritten in place, so what follows starts on a line of its own."""
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False


def error_summary(errors: collections.Counter) -> str:
    """Return errors by kind, most frequent first: "timeout 12, connection lost 3", or "none"."""
    if not errors:
        return "none"
    return ", ".join(f"{kind} {count}" for kind, count in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0])))


def daemon_events(store: Store, host: str, steps: list[StepTally]) -> list[str]:
    """Return, per step, the agent's events for `host` in the step ("none"), or "no agent data"."""
    if not steps:
        return []
    start, end = steps[0].start_ns, max(step.end_ns for step in steps) + 1
    try:
        events = store.events(start, end, where={"host": host})
        seen = store.query("libvirtd", ["up"], start - AGENT_MARGIN_NS, end + AGENT_MARGIN_NS, where={"host": host})
    except StoreError as error:
        return [f"cannot read the store: {error}"] * len(steps)
    event_ns = events["time"].astype("int64").tolist() if len(events) else []
    seen_ns = seen["time"].astype("int64").tolist() if len(seen) else []
    cells = []
    for step in steps:
        kinds = collections.Counter(kind for kind, when in zip(events["kind"], event_ns)
                                    if step.start_ns <= when <= step.end_ns)
        near = any(step.start_ns - AGENT_MARGIN_NS <= when <= step.end_ns + AGENT_MARGIN_NS for when in seen_ns)
        if kinds:
            cells.append(", ".join(f"{kind} {count}" for kind, count in kinds.items()))
        else:
            cells.append("none" if near else "no agent data")
    return cells


def _ms(value: float) -> str:
    """Return milliseconds with one decimal, or "-" when there is no figure."""
    return "-" if math.isnan(value) else f"{value:.1f}"


def table_rows(steps: list[StepTally], events: list[str]) -> list[tuple[str, ...]]:
    """Return one row of text cells per step."""
    rows = []
    for step, seen in zip(steps, events):
        p50, p99, _ = step.tally.latencies_ms()
        rows.append((str(step.index + 1), str(step.clients), f"{step.elapsed_seconds:.1f}", str(step.tally.calls),
                     f"{step.calls_per_second():.1f}", _ms(p50), _ms(p99), error_summary(step.tally.errors), seen))
    return rows


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> str:
    """Return rows as a plain-text table: numbers right-aligned, text left-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = [all(_number(row[i]) for row in rows) and bool(rows) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        """Return one row with its cells padded to the column widths."""
        return "  ".join(cell.rjust(width) if right else cell.ljust(width)
                         for cell, width, right in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(header), "  ".join("-" * width for width in widths), *map(line, rows)]) + "\n"


def _number(cell: str) -> bool:
    """Whether a cell holds a number (or "-", no figure), to be right-aligned."""
    try:
        float(cell)
    except ValueError:
        return cell == "-"
    return True
