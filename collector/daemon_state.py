"""libvirtd's state from evidence: up, hung or down, and the events of each change (a pure state machine).

The rules (they are the README's fault matrix):

- `down` needs evidence of absence: no daemon process, a connect refused or without a socket, or a
  connection lost while the process is gone.
- A daemon whose process lives but does not answer (a call or a connect waiting past the deadline, a
  keepalive timeout) is `hung`: stopped, in D state and pool exhaustion all look like this from outside.
- A hang ends only after `hang_end_probes` probes in a row answered within the deadline, so one
  continuous fault is ONE incident even when a queued probe gets through now and then; a late answer
  counts as no answer.
- Nothing observed (a skipped connection attempt, a probe still within its deadline) keeps the state.

Every transition returns the events it means, each with a sentence of what was observed; a hang's duration
runs from the moment the first unanswered call was made, measured continuously (not by deadlines).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from collector.daemon_process import ProcessEvidence

log = logging.getLogger("virtwatch.agent")

UNKNOWN, UP, HUNG, DOWN = "unknown", "up", "hung", "down"


@dataclass(frozen=True)
class Transition:
    """An event of a state change: its kind (tsdb.schema.EVENT_KINDS), message and extra fields."""

    kind: str
    message: str
    fields: dict = field(default_factory=dict)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


class DaemonState:
    """The daemon's current state and the evidence that moves it."""

    def __init__(self, hang_end_probes: int = 2):
        if hang_end_probes < 1:
            raise ValueError("hang_end_probes must be at least 1")
        self.hang_end_probes = hang_end_probes
        self.state = UNKNOWN
        self.since = 0.0  # when the state began (the clock the caller passes in)
        self.hang_began: float | None = None  # when the first unanswered call of the current hang was made
        self.answers_in_a_row = 0
        self.reason = "not observed yet"

    def hang_seconds(self, now: float) -> float:
        """How long the current hang has lasted (0 when not hung)."""
        return now - self.hang_began if self.state == HUNG and self.hang_began is not None else 0.0

    def _move(self, state: str, reason: str, now: float, began: float | None = None) -> tuple[str, float]:
        """Enter `state`; log it with how long the previous state lasted (since `began` when given)."""
        previous, lasted = self.state, now - (self.since if began is None else began)
        self.state, self.since, self.reason = state, now, reason
        level = logging.INFO if state == UP else logging.ERROR
        if previous == UNKNOWN:
            log.log(level, "libvirtd is %s: %s", state, reason)
        else:
            log.log(level, "libvirtd %s -> %s (%s for %.1f s): %s", previous, state, previous, lasted, reason)
        return previous, lasted

    def answered(self, now: float, latency_seconds: float, deadline_seconds: float) -> list[Transition]:
        """A probe answered (after `latency_seconds`); only an answer within the deadline counts."""
        if latency_seconds > deadline_seconds:
            self.answers_in_a_row = 0
            if self.state == HUNG:
                log.warning("libvirtd answered a probe after %.1f s (deadline %g s): still hung", latency_seconds,
                            deadline_seconds)
            return []
        self.answers_in_a_row += 1
        answer = f"probe answered in {latency_seconds * 1000:.1f} ms"
        if self.state == HUNG:
            if self.answers_in_a_row < self.hang_end_probes:
                log.info("libvirtd answered %d of the %d probes in a row that end a hang (%s)",
                         self.answers_in_a_row, self.hang_end_probes, answer)
                return []
            began = self.hang_began if self.hang_began is not None else self.since
            lasted = now - began
            self._move(UP, answer, now, began)
            self.hang_began = None
            return [Transition("hang_end", f"libvirtd answers again after {lasted:.1f} s hung: "
                               f"{self.hang_end_probes} probes in a row answered within {deadline_seconds:g} s "
                               f"(last {latency_seconds * 1000:.1f} ms)", {"duration_seconds": lasted})]
        events = self._answers(now, answer)
        self.reason = answer
        return events

    def answered_with_error(self, now: float, message: str) -> list[Transition]:
        """The daemon answered a call with an error: it is there. Ends a down, not a hang (that needs probes)."""
        return self._answers(now, f"the daemon answers, with an error: {message}")

    def _answers(self, now: float, reason: str) -> list[Transition]:
        """The daemon answered while not hung: a down daemon is up again (daemon_up), an unknown one is up."""
        if self.state == DOWN:
            _, lasted = self._move(UP, reason, now)
            return [Transition("daemon_up", f"libvirtd answers again after {lasted:.1f} s down ({reason})",
                               {"duration_seconds": lasted})]
        if self.state == UNKNOWN:
            self._move(UP, reason, now)
        return []

    def not_answering(self, now: float, waiting_since: float, what: str,
                      process: ProcessEvidence) -> list[Transition]:
        """A call or connect has waited since `waiting_since` with no answer (past its deadline), or the
        connection died of a keepalive timeout: hung while the process lives, down when it is gone."""
        self.answers_in_a_row = 0
        if process.running is False:
            return self.absent(now, _join(what, process.describe()))
        if self.state == HUNG:
            return []
        reason = what if process.describe() in what else _join(what, process.describe())
        previous, lasted = self._move(HUNG, reason, now)
        self.hang_began = waiting_since
        events = [Transition("hang_start", f"libvirtd hung: {reason}")]
        if previous == DOWN:
            events.insert(0, Transition("daemon_up", f"libvirtd is back after {lasted:.1f} s down, but does "
                                        f"not answer", {"duration_seconds": lasted}))
        return events

    def absent(self, now: float, evidence: str) -> list[Transition]:
        """Evidence that no daemon is there (refused, no socket, no process): down."""
        self.answers_in_a_row = 0
        if self.state == DOWN:
            return []
        previous, lasted = self._move(DOWN, evidence, now)
        events = []
        if previous == HUNG:
            began = self.hang_began if self.hang_began is not None else now - lasted
            events.append(Transition("hang_end", f"libvirtd is no longer hung after {now - began:.1f} s: it is "
                                     f"gone ({evidence})", {"duration_seconds": now - began}))
        self.hang_began = None
        events.append(Transition("daemon_down", f"libvirtd down: {evidence}"))
        return events
