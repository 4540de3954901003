"""Known data for the SLO, events and alerts page tests: the planted fleet (planted.py), a host whose budget is
spent but that burns nothing now, and the alert engine's state as the engine leaves it after one round over them
(its own evaluation and alert rules), plus an alert on a host with a hostile name."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from planted import HISTORY_MINUTES, MINUTE_NS, SLO_TOML, plant, plant_alert_state, roll_up_slis, to_ns

from tsdb import Point

#: down from 120 to 65 minutes ago, up since: more budget spent than any other host, no burn over the last hour
SPENT_HOST = "kvm-spent-06"
SPENT_DOWN_MINUTES = range(65, 121)
#: a host name with every character that could become syntax in a matcher, a URL or HTML
HOSTILE_ALERT_HOST = 'hv\\07 "x", <b>&amp; %2F/?#é'
HOSTILE_ALERT_LABELS = {"alertname": "LibvirtdRestartStorm", "host": HOSTILE_ALERT_HOST, "severity": "ticket"}
#: its evidence as the engine's restart-storm rule writes it: a sentence, then one line per restart
HOSTILE_ALERT_DESCRIPTION = ("first at 2026-01-01T00:00:00Z; latest:\n"
                             "2026-01-01T00:00:00Z restart: libvirtd pid 1 replaced by 2\n"
                             "2026-01-01T00:01:00Z restart: libvirtd pid 2 replaced by 3")


def plant_spent_host(store, now_ns: int) -> None:
    """Write SPENT_HOST's libvirtd points: a point a minute for two hours, down in SPENT_DOWN_MINUTES."""
    points = []
    for minute in range(HISTORY_MINUTES, -1, -1):
        down = minute in SPENT_DOWN_MINUTES
        fields = ({"up": 0, "hung": 0, "probe_ok": 0} if down else
                  {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": 11.0, "workers_max": 20,
                   "workers_current": 5, "workers_free": 3, "job_queue_depth": 0})
        points.append(Point("libvirtd", {"host": SPENT_HOST}, fields, now_ns - minute * MINUTE_NS - 5 * 10**9))
    store.write(points)


def plant_triage(store, slos, state_dir: Path, now: dt.datetime) -> None:
    """Plant the fleet, SPENT_HOST and the SLI rollups; leave the alert state of one engine round over them."""
    from alerts.burn import evaluate_slos
    from alerts.engine import slo_observations
    from alerts.paths import alert_state_path
    from alerts.rollups import coverage
    from alerts.state import AlertTracker

    now_ns = to_ns(now)
    plant(store, now_ns)
    plant_spent_host(store, now_ns)
    roll_up_slis(store, slos, now_ns)
    plant_alert_state(state_dir, now)
    evaluations = evaluate_slos(store, slos, now_ns, {slo.name: coverage(store, slo, now_ns) for slo in slos})
    tracker = AlertTracker(alert_state_path(state_dir), lambda: now)
    tracker.observe_all([o for by_host in evaluations.values() for o in slo_observations(by_host)])
    tracker.observe(HOSTILE_ALERT_LABELS, {"summary": "3 restarts in the last 10 min (alert at 3)",
                                           "description": HOSTILE_ALERT_DESCRIPTION}, True)


def start_triage_server(work: Path):
    """Start `virtwatch dashboard` over a DuckDB file in `work` holding plant_triage's data and alert state."""
    from dashboard_servers import planted_now, start_server, write_config

    from alerts.slo import load_slos
    from tsdb import open_store

    url = f"duckdb://{work}/store.duckdb"
    slo_path = work / "slos.toml"
    slo_path.write_text(SLO_TOML)
    now = planted_now()
    store = open_store(url)
    try:
        plant_triage(store, load_slos(slo_path), work / "alerts", now)
    finally:
        store.close()
    return start_server(write_config(work / "virtwatch.toml", url, work / "alerts", slo_path), work,
                        work / "alerts", now)
