"""The scripted demo incidents: a leak ending in a restart, a segfault storm, a long hang, guests failing.

Each incident is placed on a host chosen by busyness, at a fixed fraction of the span snapped to a working-day
hour of the host's zone, and reserves a window on that host in which hazard draws are absorbed, so a random
failure never tangles with the story. Guest failures count towards alerts.event_rules' storm rule (5 in 10
minutes), the segfaults towards its restart rule (3 in an hour).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.fleet import MAX_FDS, MIB, Fleet
from simulator.spec import FleetSpec
from simulator.timeline import SECOND_NS, Candidate, Leak

INCIDENT_NAMES = ("leak", "segfault_storm", "hang", "guest_failures")
MINUTE_NS = 60 * SECOND_NS
DAY_NS = 86400 * SECOND_NS
#: room before an incident: longer than any drawn outage (hang 30 min, guest 60 min), so none overlaps it
MARGIN_BEFORE_NS = 90 * MINUTE_NS


@dataclass
class Script:
    """What the incidents add to one host: scripted failures, windows that absorb draws, leaks."""

    candidates: list[Candidate] = field(default_factory=list)
    windows: list[tuple[int, int, str]] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)


class _Placer:
    """Places incidents in time: a fraction of the span, snapped to a weekday hour in a host's zone."""

    def __init__(self, spec: FleetSpec, fleet: Fleet, start_ns: int, end_ns: int):
        self.spec, self.fleet, self.start_ns, self.end_ns = spec, fleet, start_ns, end_ns
        self.step_ns = spec.step_seconds * SECOND_NS

    def margin_before(self) -> int:
        return MARGIN_BEFORE_NS + 2 * self.step_ns

    def at(self, name: str, h: int, fraction: float, hour: float, needs_ns: int) -> int:
        """Return an instant near `fraction` of the span at `hour` local time on a weekday, leaving room."""
        earliest = self.start_ns + self.margin_before()
        latest = self.end_ns - needs_ns - 2 * self.step_ns
        if latest < earliest:
            raise ValueError(f"FleetSpec.incidents: the {name!r} incident does not fit in {self.spec.days!r} days "
                             f"of {self.spec.step_seconds} s steps; set incidents=False")
        zone_ns = int(self.fleet.zone_hours[h] * 3600) * SECOND_NS
        base = self.start_ns + int(fraction * (self.end_ns - self.start_ns))
        midnight = (base + zone_ns) // DAY_NS * DAY_NS - zone_ns
        for days in (0, -1, 1, -2, 2, -3, 3):
            when = midnight + days * DAY_NS + int(hour * 3600) * SECOND_NS
            weekday = ((when + zone_ns) // DAY_NS + 3) % 7
            if weekday < 5 and earliest <= when <= latest:
                return when
        return min(max(base, earliest), latest)


def script_incidents(spec: FleetSpec, fleet: Fleet, start_ns: int, end_ns: int,
                     rng: np.random.Generator) -> dict[int, Script]:
    """Return the scripted incidents per host index (empty when spec.incidents is off)."""
    if not spec.incidents:
        return {}
    placer = _Placer(spec, fleet, start_ns, end_ns)
    step_ns = placer.step_ns
    busiest = [int(i) for i in np.argsort(-fleet.busyness, kind="stable")]
    hosts = len(busiest)
    scripts: dict[int, Script] = {}

    def add(h: int, name: str, first: int, last: int, candidates: list[Candidate], leak: Leak | None = None):
        script = scripts.setdefault(h, Script())
        window = (first - placer.margin_before(), last + 2 * step_ns, name)
        for other in script.windows:
            if window[0] < other[1] and other[0] < window[1]:
                raise ValueError(f"FleetSpec.incidents: the {name!r} and {other[2]!r} incidents overlap on host "
                                 f"{fleet.names[h]!r} ({spec.hosts} hosts, {spec.days!r} days of "
                                 f"{spec.step_seconds} s steps); use more hosts or days, or incidents=False")
        script.windows.append(window)
        script.candidates += candidates
        if leak is not None:
            script.leaks.append(leak)

    # a mid-load host's daemon leaks fds and memory for up to 3 days after a night-time update, then restarts
    h = busiest[hosts // 2]
    length = int(min(3 * DAY_NS, 0.3 * (end_ns - start_ns)))
    t0 = placer.at("leak", h, 0.2, 3.0, length)
    t1 = t0 + length
    seconds = length / SECOND_NS
    leak = Leak(t0, t1, fds_per_second=(0.97 * MAX_FDS - 80) / seconds, rss_bytes_per_second=3000 * MIB / seconds)
    add(h, "leak", t0, t1, [Candidate(t1, "restart", "leak")], leak)

    # five segfaults in under an hour on the busiest host in its afternoon, each followed by a restart
    h = busiest[0]
    gaps = [max(minutes * MINUTE_NS, 2 * step_ns) for minutes in (0, 12, 13, 16, 14)]
    t = placer.at("segfault_storm", h, 0.6, 14.0, sum(gaps) + 5 * MINUTE_NS)
    times = list(np.cumsum(gaps) + t + rng.integers(0, 60, size=5) * SECOND_NS)
    add(h, "segfault_storm", times[0], times[-1] + step_ns,
        [Candidate(int(u), "segfault", "segfault_storm") for u in times])

    # a 25-minute hang on the second busiest host in its morning; the agent's connection times out meanwhile
    h = busiest[1 % hosts]
    length = max(25 * MINUTE_NS, 3 * step_ns)
    t = placer.at("hang", h, 0.75, 11.0, length + 600 * SECOND_NS) + int(rng.integers(0, 600)) * SECOND_NS
    keepalive = t + min(30 * SECOND_NS, length // 2)
    add(h, "hang", t, t + length, [Candidate(t, "hang_start", "hang", duration_ns=length),
                                   Candidate(keepalive, "keepalive_timeout", "hang")])

    # five guests fail within 8 minutes on the third busiest host; each is started again 20 to 40 minutes later
    h = busiest[2 % hosts]
    count = min(5, fleet.domains)
    offsets = [0, 90, 180, 300, 450][:count]
    outages = [max(int(rng.uniform(20, 40) * MINUTE_NS), 2 * step_ns) for _ in range(count)]
    t = placer.at("guest_failures", h, 0.88, 16.0, max(outages) + 450 * SECOND_NS)
    guests = rng.choice(fleet.domains, size=count, replace=False)
    failures = [Candidate(t + off * SECOND_NS, "domain_failed", "guest_failures", duration_ns=length, domain=int(d))
                for off, length, d in zip(offsets, outages, guests)]
    add(h, "guest_failures", t, max(c.time_ns + c.duration_ns for c in failures), failures)
    return scripts
