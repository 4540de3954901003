"""Specs the simulator tests share: a fixed end time and a small fleet where every failure kind is frequent."""

from simulator import FleetSpec

END_NS = 1_750_000_000 * 10**9  # a fixed end, so simulations are reproducible
BUSY_RATES = {"restart": 3.0, "segfault": 2.0, "hang_start": 3.0, "daemon_down": 2.0, "keepalive_timeout": 2.0,
              "domain_failed": 4.0, "domain_crashed": 2.0, "domain_io_error": 2.0, "domain_watchdog": 2.0}


def busy_spec(**changes) -> FleetSpec:
    """Return a small fleet (4 hosts, 4 days of 2-minute steps, 3 guests each) where failures are frequent."""
    spec = dict(hosts=4, days=4.0, step_seconds=120, domains_per_host=3, seed=7, end_ns=END_NS,
                base_rate_per_day=BUSY_RATES)
    spec.update(changes)
    return FleetSpec(**spec)
