"""What to simulate: the fleet (FleetSpec) and the planted truth (Effect), checked when they are made."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from tsdb.point import clean_name
from tsdb.schema import EVENT_KINDS
from tsdb.schema import FAILURE_KINDS as SCHEMA_FAILURE_KINDS

#: guest kinds the simulator cannot draw: it does not simulate a wedged guest (its points' stats_partial stays 0)
NOT_SIMULATED = ("domain_wedged",)
#: the failure kinds the hazard draws (tsdb.schema's daemon failures and guest kinds, but those not simulated);
#: ending kinds follow from these. Each kind draws from its own random stream, numbered by its place here, so this
#: order is part of what a seed gives
FAILURE_KINDS = tuple(k for k in SCHEMA_FAILURE_KINDS if k not in NOT_SIMULATED)

#: failures per host per day when nothing raises them; a kind left out of a spec's mapping is never drawn
DEFAULT_BASE_RATES: Mapping[str, float] = MappingProxyType({
    "restart": 0.05, "segfault": 0.02, "hang_start": 0.05, "daemon_down": 0.02, "keepalive_timeout": 0.1,
    "domain_failed": 0.3, "domain_crashed": 0.02, "domain_io_error": 0.05, "domain_watchdog": 0.02,
})

#: the simulated numeric fields an Effect may name: load signals simulated before any failure, so the value a
#: hazard sees at a step is the value written at that step (see simulator.hazard.HAZARD_MODEL)
EFFECT_SIGNALS = (
    "host.load1", "host.load5", "host.load15", "host.cpu_busy_percent", "host.libvirt_calls_per_second",
    "libvirtd.job_queue_depth", "libvirtd.workers_current", "libvirtd.workers_free", "libvirtd.clients",
    "libvirtd.probe_latency_ms",
)

STEP_SECONDS_MAX = 86400


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Effect:
    """Planted truth: failures of `kind` happen `factor` times as often while `signal` >= its threshold."""

    signal: str                  # "measurement.field" of a simulated numeric field, e.g. "libvirtd.job_queue_depth"
    kind: str                    # an event kind from tsdb.schema.EVENT_KINDS the hazard draws, e.g. "restart"
    factor: float                # hazard ratio above vs below the threshold (1.0 = no effect)
    threshold_quantile: float = 0.75  # threshold = this quantile of the signal over all hosts' steps

    def __post_init__(self):
        if self.signal not in EFFECT_SIGNALS:
            raise ValueError(f"Effect.signal {self.signal!r}: not a load signal the simulator can plant an effect "
                             f"on; choose one of {', '.join(EFFECT_SIGNALS)}")
        if self.kind not in FAILURE_KINDS:
            why = "not an event kind" if self.kind not in EVENT_KINDS else "not a failure kind the hazard draws"
            raise ValueError(f"Effect.kind {self.kind!r}: {why}; choose one of {', '.join(FAILURE_KINDS)}")
        if not _is_number(self.factor) or self.factor <= 0:
            raise ValueError(f"Effect.factor {self.factor!r}: must be a finite number > 0 (1.0 = no effect)")
        if not _is_number(self.threshold_quantile) or not 0 < self.threshold_quantile < 1:
            raise ValueError(f"Effect.threshold_quantile {self.threshold_quantile!r}: must be a number strictly "
                             f"between 0 and 1")


@dataclass(frozen=True)
class FleetSpec:
    """A fleet to simulate: its size, time span, seed, failure rates, planted effects and scripted incidents."""

    hosts: int = 24
    days: float = 14.0
    seed: int = 0
    step_seconds: int = 60          # one point per host per measurement per step
    end_ns: int | None = None       # default: now, floored to the step
    domains_per_host: int = 6
    base_rate_per_day: Mapping[str, float] = field(default_factory=lambda: DEFAULT_BASE_RATES)
    effects: tuple[Effect, ...] = ()
    incidents: bool = True          # the scripted demo incidents; tests of the hazard turn them off
    host_prefix: str = "hv"         # host names like "hv-01"; hostile prefixes must round-trip

    def __post_init__(self):
        if not _is_int(self.hosts) or not 1 <= self.hosts <= 100_000:
            raise ValueError(f"FleetSpec.hosts {self.hosts!r}: must be an int from 1 to 100000")
        if not _is_number(self.days) or self.days <= 0:
            raise ValueError(f"FleetSpec.days {self.days!r}: must be a finite number > 0")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"FleetSpec.seed {self.seed!r}: must be an int >= 0")
        if not _is_int(self.step_seconds) or not 1 <= self.step_seconds <= STEP_SECONDS_MAX:
            raise ValueError(f"FleetSpec.step_seconds {self.step_seconds!r}: must be an int from 1 to "
                             f"{STEP_SECONDS_MAX}")
        if self.end_ns is not None and (not _is_int(self.end_ns) or not 0 < self.end_ns < 2**62):
            raise ValueError(f"FleetSpec.end_ns {self.end_ns!r}: must be None or an int of nanoseconds since "
                             f"the Unix epoch")
        if self.steps < 1:
            raise ValueError(f"FleetSpec.days {self.days!r}: shorter than one step of {self.step_seconds} s")
        if self.end_ns is not None and self.end_ns <= self.steps * self.step_seconds * 10**9:
            raise ValueError(f"FleetSpec.end_ns {self.end_ns!r}: the span of {self.days!r} days would start "
                             f"before the Unix epoch")
        if not _is_int(self.domains_per_host) or not 0 <= self.domains_per_host <= 10_000:
            raise ValueError(f"FleetSpec.domains_per_host {self.domains_per_host!r}: must be an int from 0 to "
                             f"10000")
        self._check_rates()
        self._check_effects()
        if not isinstance(self.incidents, bool):
            raise ValueError(f"FleetSpec.incidents {self.incidents!r}: must be True or False")
        if self.incidents and self.days < 2:
            raise ValueError(f"FleetSpec.incidents: the scripted incidents need days >= 2 (got {self.days!r}); "
                             f"set incidents=False for a shorter span")
        if self.incidents and self.domains_per_host < 1:
            raise ValueError("FleetSpec.incidents: the guest failure incident needs domains_per_host >= 1; set "
                             "incidents=False for a fleet without guests")
        self._check_prefix()

    def _check_rates(self) -> None:
        rates = self.base_rate_per_day
        if not isinstance(rates, Mapping):
            raise ValueError(f"FleetSpec.base_rate_per_day {rates!r}: must be a mapping of kind to failures per "
                             f"host per day")
        for kind, rate in rates.items():
            if kind not in FAILURE_KINDS:
                raise ValueError(f"FleetSpec.base_rate_per_day[{kind!r}]: not a failure kind the hazard draws; "
                                 f"choose from {', '.join(FAILURE_KINDS)}")
            if not _is_number(rate) or rate < 0:
                raise ValueError(f"FleetSpec.base_rate_per_day[{kind!r}] {rate!r}: must be a finite number >= 0 "
                                 f"(failures per host per day)")
        # frozen: keep a read-only copy, so the spec cannot change after its checks
        object.__setattr__(self, "base_rate_per_day", MappingProxyType(dict(rates)))

    def _check_effects(self) -> None:
        if not isinstance(self.effects, tuple):
            raise ValueError(f"FleetSpec.effects {self.effects!r}: must be a tuple of Effect")
        for i, effect in enumerate(self.effects):
            if not isinstance(effect, Effect):
                raise ValueError(f"FleetSpec.effects[{i}] {effect!r}: must be an Effect")
            if self.base_rate_per_day.get(effect.kind, 0.0) == 0.0 and effect.factor != 1.0:
                raise ValueError(f"FleetSpec.effects[{i}]: kind {effect.kind!r} has no base rate in "
                                 f"base_rate_per_day, so the effect would plant nothing; give it a rate > 0")
        if len(set(self.effects)) != len(self.effects):
            raise ValueError("FleetSpec.effects: the same Effect is given twice")

    def _check_prefix(self) -> None:
        prefix = self.host_prefix
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"FleetSpec.host_prefix {prefix!r}: must be a non-empty string")
        try:
            prefix.encode()
        except UnicodeEncodeError:
            raise ValueError(f"FleetSpec.host_prefix {prefix!r}: must be valid unicode (no lone surrogates)") from None
        name = self.host_names()[0]
        if clean_name(name) != name:
            raise ValueError(f"FleetSpec.host_prefix {prefix!r}: a store would keep host {name!r} as "
                             f"{clean_name(name)!r} (line breaks, NUL, a leading tab or a backslash before a "
                             f"space, comma, '=' or quote cannot round-trip; see tsdb.point)")

    @property
    def steps(self) -> int:
        """Return the number of steps: days over step_seconds, rounded."""
        return int(round(self.days * 86400 / self.step_seconds))

    def host_names(self) -> list[str]:
        """Return the hosts' names: the prefix, a dash and a zero-padded number from 1 ("hv-01")."""
        width = max(2, len(str(self.hosts)))
        return [f"{self.host_prefix}-{i:0{width}d}" for i in range(1, self.hosts + 1)]

    def resolved_end_ns(self) -> int:
        """Return end_ns, or now floored to the step when it is None."""
        if self.end_ns is not None:
            return self.end_ns
        step_ns = self.step_seconds * 10**9
        now = time.time_ns()
        return now - now % step_ns
