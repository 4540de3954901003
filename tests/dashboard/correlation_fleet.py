"""The fleet the correlation page's tests analyse: restarts planted 4x as frequent while the job queue is deep.

Twelve hosts over ten days at the page's own step for that range (300 s), no guests, no scripted incidents, and
only restarts drawn, at a rate raised to 1 per host per day so there are a couple of hundred. The simulator's
hazard acts on the load written at a failure's own step and its job queue is noisy from step to step, so the
planted factor shows at lag 0; at the analysis' default lag of 1 step it is washed out.
"""

from __future__ import annotations

import datetime as dt

from simulator import Effect, FleetSpec, simulate, write_simulation

END = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
DAYS = 10
START = END - dt.timedelta(days=DAYS)
STEP_SECONDS = 300
FACTOR = 4.0
PLANTED_SIGNAL = "libvirtd.job_queue_depth"
#: a host name a URL, a dropdown and a query must carry exactly
HOSTILE_PREFIX = 'kvm "edge", 5 ✓'
SPEC = FleetSpec(hosts=12, days=DAYS, seed=3, step_seconds=STEP_SECONDS, end_ns=int(END.timestamp()) * 10**9,
                 domains_per_host=0, incidents=False, base_rate_per_day={"restart": 1.0},
                 effects=(Effect(PLANTED_SIGNAL, "restart", factor=FACTOR),), host_prefix=HOSTILE_PREFIX)


def to_ns(moment: dt.datetime) -> int:
    """Return an aware datetime as nanoseconds since the epoch."""
    return int(moment.timestamp()) * 10**9


def fill(store):
    """Write the fleet into a store; return the simulation (its hosts and failures are the truth)."""
    sim = simulate(SPEC)
    write_simulation(store, sim, batch_steps=288)
    return sim


def range_query() -> str:
    """Return the shell's URL parameters for the fleet's whole range."""
    return f"range=custom&start={START:%Y-%m-%dT%H:%M}&end={END:%Y-%m-%dT%H:%M}"


def demo_fleet(store, now_ns: int):
    """Write the demo's own fleet (virtwatch.demo: 24 hosts, 14 days, its planted effects and incidents) up to
    now_ns into a store, as the demo's first start does; return the simulation.

    The demo's truth: libvirtd restarts 5x as frequent while the job queue depth is in its top quarter (and hangs
    3x while the 1-minute load is), acting within the same one-minute step.
    """
    from simulator import write_simulation
    from virtwatch.demo import DemoState, _segment

    # the same fleet whenever the test runs: the segment's length follows the clock unless told its now, and its
    # minutes fall on the same place of the 5-min steps the page analyses when it starts on one
    start_ns = (now_ns - 14 * 86400 * 10**9) // (300 * 10**9) * (300 * 10**9)
    sim = _segment(DemoState(hosts=24, seed=1, written_until_ns=0), start_ns, incidents=True,
                   now_ns=start_ns + 14 * 86400 * 10**9)
    write_simulation(store, sim, stop_step=sim.step_at(now_ns))
    return sim
