"""Fixtures of the simulator tests: a small busy fleet with incidents, its points, and its points as frames (made
once for every test module: nothing changes them)."""

import pandas as pd
import pytest
from simulated_fleets import busy_spec

from simulator import simulate


@pytest.fixture(scope="session")
def busy():
    """A simulated busy fleet with incidents, and all its points (about 70,000)."""
    sim = simulate(busy_spec())
    return sim, [point for batch in sim.points() for point in batch]


@pytest.fixture(scope="session")
def frames(busy):
    """The busy fleet's points as one frame per measurement: time_ns, the tags, the fields (absent: NaN)."""
    _sim, points = busy
    rows: dict[str, list] = {}
    for p in points:
        rows.setdefault(p.measurement, []).append({"time_ns": p.time_ns, **p.tags, **p.fields})
    return {name: pd.DataFrame(r) for name, r in rows.items()}
