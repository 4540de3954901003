"""The correlation page's state in its URL: the failure kinds, the load signal drawn, the hosts and the lag.

    state = page_state(params)        # ParamError naming the bad parameter
    state.params()                    # back into the URL

No lag in the URL looks at lag 0 and lag 1 both (the analysis adjusts for the two looks and reports the lag that
carries an effect); `lag=0`, `lag=1` or `lag=2` looks at that lag alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from dashboard.timerange import ParamError, list_param, text_param
from tsdb.schema import DAEMON_FAILURE_KINDS, FAILURE_KINDS, GUEST_KINDS, event_kind

#: the failure kinds offered: tsdb.schema's daemon failures and guest kinds (not the recoveries daemon_up and
#: hang_end, the log_error placeholder nor the agent's own points_dropped); log_<signature> kinds the store holds
#: are offered too
DAEMON_KINDS = DAEMON_FAILURE_KINDS
KINDS = FAILURE_KINDS
#: a classified log signature's kind, as the collector names it (the characters a URL may carry of it)
LOG_KIND = re.compile(r"log_[a-z0-9_]{1,60}")
#: the measurements whose numeric fields may be picked as a load signal (each is tagged by host)
SIGNAL_MEASUREMENTS = ("host", "libvirtd", "collector")
#: fields that are not load: identities, times and ever-growing counters
NOT_LOAD = re.compile(r"^(up|hung|probe_ok|pid|start_time_seconds|max_fds|cpus|memory_total_bytes"
                      r"|workers_(min|max)|clients_max)$|_total$")
#: the lags one may look at alone; BOTH_LAGS (the default, no `lag` in the URL) looks at lag 0 and lag 1 together
LAGS = (0, 1, 2)
BOTH_LAGS = "both"
LAG_CHOICES = (BOTH_LAGS, *LAGS)
ANALYSED_LAGS = (0, 1)
DEFAULT_KINDS = ("restart",)
DEFAULT_SIGNAL = "libvirtd.job_queue_depth"
DEFAULT_LAG = BOTH_LAGS
KIND_GROUPS = {"daemon": DAEMON_KINDS, "guest": GUEST_KINDS}


@dataclass(frozen=True)
class PageState:
    """What the page shows: failure kinds (one or a group), the load signal drawn, the hosts (none: the fleet) and
    the lag in steps between the load and the failures it is compared with (BOTH_LAGS: lags 0 and 1, adjusted)."""

    kinds: tuple[str, ...] = DEFAULT_KINDS
    signal: str = DEFAULT_SIGNAL
    hosts: tuple[str, ...] = ()
    lag_steps: int | str = DEFAULT_LAG

    def params(self) -> dict[str, str | list[str]]:
        """Return the page's URL parameters (kind and host repeat; an empty host list is the whole fleet; the
        default lags are left out)."""
        lag = "" if self.lag_steps == BOTH_LAGS else str(self.lag_steps)
        return {"kind": list(self.kinds), "signal": self.signal, "host": list(self.hosts), "lag": lag}

    @property
    def analysed_lags(self) -> int | tuple[int, ...]:
        """The lag(s) the analysis looks at: analysis.Settings.lag_steps."""
        return ANALYSED_LAGS if self.lag_steps == BOTH_LAGS else int(self.lag_steps)


def signal_choices() -> tuple[str, ...]:
    """Return every signal the page offers: the analysis' defaults, then the other numeric load fields."""
    from analysis import DEFAULT_SIGNALS
    from tsdb.schema import MEASUREMENTS

    extra = [f"{m}.{f.name}" for m in SIGNAL_MEASUREMENTS for f in MEASUREMENTS[m].fields
             if f.type in ("int", "float") and not NOT_LOAD.search(f.name)]
    return tuple(dict.fromkeys([*DEFAULT_SIGNALS, *extra]))


def check_kind(kind: str) -> str:
    """Return a failure kind the page offers; ParamError naming `kind` otherwise."""
    if kind in KINDS or LOG_KIND.fullmatch(kind):
        return kind
    raise ParamError(f"kind = {kind[:80]!r}: not a failure kind; expected one of {', '.join(KINDS)} or a "
                     f"log_<signature> kind")


def page_state(params: Mapping) -> PageState:
    """Return the page's state from its URL parameters (defaults where absent); ParamError naming a bad one."""
    kinds = tuple(sorted(check_kind(k) for k in list_param(params, "kind"))) or DEFAULT_KINDS
    signal = text_param(params, "signal") or DEFAULT_SIGNAL
    if signal not in signal_choices():
        raise ParamError(f"signal = {signal[:80]!r}: not a load signal; expected a numeric field of "
                         f"{', '.join(SIGNAL_MEASUREMENTS)} such as {DEFAULT_SIGNAL} (see docs/metrics.md)")
    hosts = tuple(list_param(params, "host"))
    lag = text_param(params, "lag") or BOTH_LAGS
    if lag not in {str(n) for n in LAG_CHOICES}:
        raise ParamError(f"lag = {lag[:20]!r}: expected a number of steps, one of {', '.join(map(str, LAGS))} "
                         f"(none: lags 0 and 1 both)")
    return PageState(kinds, signal, hosts, lag if lag == BOTH_LAGS else int(lag))


def signal_label(name: str) -> str:
    """Return a signal as a control or an axis names it: "job queue depth"."""
    from analysis.signals import SIGNAL_LABELS

    label = SIGNAL_LABELS.get(name)
    if label is None:
        return name.split(".", 1)[1].replace("_", " ")
    return label[4:] if label.startswith("the ") else label


def signal_options() -> list[dict]:
    """Return the load signal dropdown's options: the defaults first, each with its stored name."""
    from analysis import DEFAULT_SIGNALS

    return [{"label": f"{signal_label(name)} · {name}" + ("" if name in DEFAULT_SIGNALS else " (extra)"),
             "value": name} for name in signal_choices()]


def kind_options(stored_kinds: list[str] = (), chosen: tuple[str, ...] = ()) -> list[dict]:
    """Return the failure kind dropdown's options: daemon kinds, guest kinds, then the stored log_ kinds."""
    logs = sorted({k for k in [*stored_kinds, *chosen] if LOG_KIND.fullmatch(k)})
    return [{"label": f"{k} · {event_kind(k).label}", "value": k} for k in (*KINDS, *logs)]


