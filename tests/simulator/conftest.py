"""Fixtures of the simulator tests: a small fleet where every failure kind happens, with its points as frames."""

import pandas as pd
import pytest

from simulator import FleetSpec, simulate

END_NS = 1_750_000_000 * 10**9  # a fixed end, so simulations are reproducible
BUSY_RATES = {"restart": 3.0, "segfault": 2.0, "hang_start": 3.0, "daemon_down": 2.0, "keepalive_timeout": 2.0,
              "domain_failed": 4.0, "domain_crashed": 2.0, "domain_io_error": 2.0, "domain_watchdog": 2.0}


def busy_spec(**changes) -> FleetSpec:
    """Return a small fleet (4 hosts, 4 days of 2-minute steps, 3 guests each) where failures are frequent."""
    spec = dict(hosts=4, days=4.0, step_seconds=120, domains_per_host=3, seed=7, end_ns=END_NS,
                base_rate_per_day=BUSY_RATES)
    spec.update(changes)
    return FleetSpec(**spec)


@pytest.fixture(scope="module")
def busy():
    """A simulated busy fleet with incidents, and all its points (about 70,000)."""
    sim = simulate(busy_spec())
    return sim, [point for batch in sim.points() for point in batch]


@pytest.fixture(scope="module")
def frames(busy):
    """The busy fleet's points as one frame per measurement: time_ns, the tags, the fields (absent: NaN)."""
    _sim, points = busy
    rows: dict[str, list] = {}
    for p in points:
        rows.setdefault(p.measurement, []).append({"time_ns": p.time_ns, **p.tags, **p.fields})
    return {name: pd.DataFrame(r) for name, r in rows.items()}
