"""Load signals and failure kinds: names ("measurement.field"), the defaults, and how a sentence says them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tsdb.schema import MEASUREMENTS, event_kind


@dataclass(frozen=True)
class Signal:
    """A numeric load signal: a field of a measurement, or a difference of two fields (`minus`)."""

    measurement: str
    field: str
    #: the fields read from the store: one, or two whose difference is the signal
    sources: tuple[str, ...]

    @property
    def name(self) -> str:
        """The signal's name, "measurement.field"."""
        return f"{self.measurement}.{self.field}"

    @property
    def label(self) -> str:
        """The signal as a sentence names it ("the job queue depth")."""
        return SIGNAL_LABELS.get(self.name, f"{self.name}")


#: signals computed from two fields: name -> (measurement, minuend, subtrahend)
DERIVED = {
    "libvirtd.workers_busy": ("libvirtd", "workers_current", "workers_free"),
}

DEFAULT_SIGNALS = (
    "host.load1",
    "host.domains_running",
    "host.libvirt_calls_per_second",
    "libvirtd.probe_latency_ms",
    "libvirtd.workers_busy",
    "libvirtd.job_queue_depth",
    "libvirtd.clients",
    "libvirtd.rss_bytes",
    "libvirtd.open_fds",
)

SIGNAL_LABELS = {
    "host.load1": "the 1-minute load average",
    "host.load5": "the 5-minute load average",
    "host.load15": "the 15-minute load average",
    "host.cpu_busy_percent": "host CPU use",
    "host.domains_running": "the number of running guests",
    "host.libvirt_calls_per_second": "the rate of libvirt calls",
    "libvirtd.probe_latency_ms": "the probe latency",
    "libvirtd.workers_busy": "the number of busy libvirtd workers",
    "libvirtd.job_queue_depth": "the job queue depth",
    "libvirtd.clients": "the number of libvirtd clients",
    "libvirtd.rss_bytes": "libvirtd's resident memory",
    "libvirtd.open_fds": "libvirtd's open file descriptors",
    "libvirtd.threads": "libvirtd's thread count",
}

_NUMERIC = ("float", "int")


def parse_signal(spec) -> Signal:
    """Return the Signal a "measurement.field" string (or a (measurement, field) pair) names.

    A measurement of tsdb.schema must have that field, numeric; a measurement the schema does not know is
    read as it is (a user's own measurement). Raise ValueError naming the signal and the reason.
    """
    if isinstance(spec, Signal):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(s, str) for s in spec):
        measurement, field = spec
    elif isinstance(spec, str):
        measurement, dot, field = spec.partition(".")
        if not dot:
            raise ValueError(f"signal {spec!r}: expected 'measurement.field', for example 'host.load1'")
    else:
        raise ValueError(f"signal {spec!r}: expected a 'measurement.field' string")
    if not measurement or not field:
        raise ValueError(f"signal {spec!r}: expected 'measurement.field', for example 'host.load1'")
    name = f"{measurement}.{field}"
    if name in DERIVED:
        _m, minuend, subtrahend = DERIVED[name]
        return Signal(measurement, field, (minuend, subtrahend))
    known = MEASUREMENTS.get(measurement)
    if known is not None:
        try:
            kind = known.field(field).type
        except KeyError:
            raise ValueError(f"signal {name!r}: measurement {measurement!r} has no field {field!r} "
                             f"(see docs/metrics.md)") from None
        if kind not in _NUMERIC:
            raise ValueError(f"signal {name!r}: field {field!r} is a {kind} field, not a number")
    return Signal(measurement, field, (field,))


def parse_signals(specs) -> tuple[Signal, ...]:
    """Return the Signals named (the defaults when None), each once, in order."""
    if specs is None:
        specs = DEFAULT_SIGNALS
    if isinstance(specs, (str, Signal)):
        specs = [specs]
    signals = tuple(dict.fromkeys(parse_signal(s) for s in specs))
    if not signals:
        raise ValueError("signals: expected at least one 'measurement.field'")
    return signals


def parse_kinds(kinds) -> tuple[str, ...]:
    """Return failure kinds as a sorted tuple: one kind or a set of kinds, each a non-empty string."""
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, Iterable):
        raise ValueError(f"kinds = {kinds!r}: expected an event kind or a list of kinds, e.g. 'restart'")
    kinds = list(kinds)
    if not kinds or not all(isinstance(k, str) and k for k in kinds):
        raise ValueError(f"kinds = {kinds!r}: expected an event kind or a list of kinds, e.g. 'restart'")
    return tuple(sorted(set(kinds)))


def known_kind(kind: str) -> bool:
    """Say whether the agent reports this kind (tsdb.schema's kinds, or a log_<signature> kind)."""
    return event_kind(kind) is not None


def kinds_label(kinds: tuple[str, ...]) -> str:
    """Return the failures as a sentence names them: "libvirtd restarts", "failures (restart or segfault)"."""
    if not kinds:
        return "failures"
    if len(kinds) == 1:
        known = event_kind(kinds[0])
        return known.label if known is not None else f"'{kinds[0]}' events"
    return "failures (" + ", ".join(kinds[:-1]) + " or " + kinds[-1] + ")"


def kinds_nouns(kinds: tuple[str, ...]) -> tuple[str, str]:
    """Return how a count names one and several failures of the kinds: ("restart", "restarts") for one kind the
    agent reports (tsdb.schema), ("failure", "failures") for several or an unknown one."""
    known = event_kind(kinds[0]) if len(kinds) == 1 else None
    return known.noun if known is not None else ("failure", "failures")


def format_value(signal_name: str, value: float) -> str:
    """Return a signal's value as a person reads it, with its unit (bytes as MiB/GiB, ms, plain counts)."""
    if value != value:
        return "n/a"
    if signal_name.endswith("_bytes"):
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= size:
                return f"{_short(value / size)} {unit}"
        return f"{_short(value)} bytes"
    if signal_name.endswith("_ms"):
        return f"{_short(value)} ms"
    if signal_name.endswith("_percent"):
        return f"{_short(value)}%"
    if signal_name.endswith("_per_second"):
        return f"{_short(value)}/s"
    return _short(value)


def _short(value: float) -> str:
    """Return a number with three significant figures, without a trailing .0."""
    if value == 0:
        return "0"
    text = f"{value:.3g}"
    if "e" in text:
        text = f"{value:,.0f}"
    return text
