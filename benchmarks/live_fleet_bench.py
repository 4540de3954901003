"""The alert engine over a live fleet (issue 13): false pages while healthy hosts are written live into InfluxDB
1.6, and the notifications a fleet-wide outage sends. Rows for bench_alerts.py's table (its part 3).

False pages: `hosts` healthy hosts, a fresh fleet as when issue 13 paged 1,541 of 2,000 a minute after start (one
bad probe among a few then pages), written live by 8 threads with a connection each (every host every 10 s at its
own phase, points stamped up to a second before their write: tests/alerts/live_fleet.py), while the engine as
`virtwatch alerts` builds it (deploy/slos.toml, the default rules and storm gate) runs its own loop. Pages and
tickets seen at a webhook receiver, extrapolated to an hour of rounds over live points. Target: 0.

Outage: as many hosts, watched for two days (their rollups planted), every host's probes failing for 2 minutes,
in simulated time (a round every 30 s of the engine's clock, the shipped interval; the store and receivers real):
what each of two webhook receivers gets. Twice: with the onset inside a round (every host starts burning in the
same round) and a moment before a round's settled edge (a few hosts start burning one round before the rest).
Target: 1 page + 1 resolve per receiver, no host's own page.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "alerts")]

from live_fleet import (S, Fleet, LiveWriters, RoundLog, SimClock, alert_key, at, fleet_engine, notices,  # noqa: E402
                        onset_where, prefill_days, running, shipped_slos, simulate_outage, starting_rounds)
from receivers import HTTPReceiver  # noqa: E402
from servers import free_port  # noqa: E402
from tsdb import open_store  # noqa: E402

SLOS = shipped_slos()
AVAILABILITY = SLOS["libvirtd-availability"]
WRITERS = 8
OUTAGE_SECONDS = 120
ROUND_SECONDS = 30     # [alerts] interval_seconds, shipped
STORM_SHARE = 0.1      # [alerts] storm_share, shipped
SIM_START = 1_780_000_020 * S  # on the rounds' 30 s grid

Row = tuple[str, str, str, str]


def _receiver() -> HTTPReceiver:
    receiver = HTTPReceiver(free_port())
    receiver.start()
    return receiver


def false_pages(server, tmp: Path, hosts: int, minutes: float, slo_interval: float) -> list[Row]:
    """Write `hosts` healthy hosts live for `minutes` while the engine runs; return the table's rows."""
    server.create_database("fleet")
    url = f"influxdb://127.0.0.1:{server.port}/fleet"
    receiver = _receiver()
    stores = [open_store(url) for _ in range(WRITERS + 1)]
    try:
        fleet = Fleet.healthy(hosts, seed=13, writers=WRITERS)
        live_from = time.time_ns()
        fleet.start(live_from)
        engine = fleet_engine(stores[0], {"oncall": receiver.url + "/hook"}, tmp / "fleet-state",
                              slo_interval_seconds=slo_interval)
        rounds = RoundLog(engine, time.time_ns)
        with LiveWriters(fleet, stores[1:]) as writers, running(engine):
            time.sleep(minutes * 60)
        ended = time.time_ns()
    finally:
        for store in stores:
            store.close()
        receiver.stop()
    fired = [alert_key(a) for n in notices(receiver) for a in n.alerts if a["status"] == "firing"]
    pages = sum(1 for key in fired if key[2] == "page")
    tickets = sum(1 for key in fired if key[2] == "ticket")
    every_host_live = live_from + 10 * S  # windows ending later hold a live collection of every host
    live = rounds.slo_rounds(AVAILABILITY, every_host_live)
    watched = (ended - live[0].began_ns) / S if live else 0.0
    per_hour = pages * 3600 / watched if watched else float("nan")
    slo_seconds = [r.report.seconds for r in rounds.rounds if r.slos]
    rule_seconds = [r.report.seconds for r in rounds.rounds if not r.slos] or [0.0]
    label = f"live fleet, {hosts} healthy hosts"
    return [
        (f"{label}: points written live in {minutes:g} min ({WRITERS} writers)", f"{writers.points:,}", "points",
         ""),
        (f"{label}: longest from a point's stamp to its write", f"{writers.max_lag_ns / S:.2f}", "s", ""),
        (f"{label}: SLO rounds over live points (every {slo_interval:g} s)", f"{len(live)}",
         f"rounds in {watched / 60:.1f} min", ""),
        (f"{label}: an SLO round, a rules round (medians; max)",
         f"{statistics.median(slo_seconds):.1f}, {statistics.median(rule_seconds):.1f}",
         f"s (max {max(slo_seconds):.1f}, {max(rule_seconds):.1f})", ""),
        (f"{label}: pages, tickets seen", f"{pages}, {tickets}", "notifications", "0, 0"),
        (f"{label}: false pages per hour (extrapolated)", f"{per_hour:.0f}", "pages/h", "0"),
        (f"{label}: round errors, write errors", f"{len(rounds.errors)}, {len(writers.errors)}", "", "0, 0"),
    ]


ONSETS = {
    "inside a round": lambda chunks: len(chunks) == 1,
    "just before a round's edge": lambda chunks: len(chunks) == 2 and 0 < chunks[0] < STORM_SHARE * sum(chunks),
}


def outage(server, tmp: Path, hosts: int, onset_kind: str) -> list[Row]:
    """Run a fleet-wide outage of `hosts` in simulated time; return the table's rows."""
    database = "outage_" + "".join(c for c in onset_kind if c.isalpha())
    server.create_database(database)
    receivers = {"oncall": _receiver(), "chat": _receiver()}
    store = open_store(f"influxdb://127.0.0.1:{server.port}/{database}")
    try:
        fleet = Fleet.healthy(hosts, seed=2, writers=WRITERS)
        began = time.perf_counter()
        prefill_days(store, fleet, list(SLOS.values()), SIM_START, days=2)
        planted = time.perf_counter() - began
        onset = onset_where(fleet, SIM_START + 60 * S, ROUND_SECONDS, ONSETS[onset_kind], SIM_START)
        clock = SimClock(at(SIM_START))
        engine = fleet_engine(store, {name: r.url + "/hook" for name, r in receivers.items()},
                              tmp / f"{database}-state", clock=clock)
        run = simulate_outage(store, fleet, engine, clock, AVAILABILITY, onset_ns=onset,
                              outage_seconds=OUTAGE_SECONDS, round_seconds=ROUND_SECONDS)
    finally:
        store.close()
        for receiver in receivers.values():
            receiver.stop()
    chunks = starting_rounds(fleet, onset, SIM_START, ROUND_SECONDS)
    counts = []
    for receiver in receivers.values():
        keys = [alert_key(a) for n in notices(receiver) for a in n.alerts]
        fleet_pages = [k for k in keys if k[3] == "fleet" and k[2] == "page"]
        host_pages = [k for k in keys if k[3] != "fleet" and k[2] == "page"]
        others = [k for k in keys if k[2] != "page"]
        counts.append((sum(k[4] == "firing" for k in fleet_pages), sum(k[4] == "resolved" for k in fleet_pages),
                       sum(k[4] == "firing" for k in host_pages), len(others), len(notices(receiver))))
    same = all(c == counts[0] for c in counts)
    fleet_firing, fleet_resolved, host_firing, other, sent = counts[0]
    label = f"outage of {hosts} hosts, 2 min, onset {onset_kind}"
    where = "each receiver" if same else "receiver oncall (chat differs: " + repr(counts[1]) + ")"
    return [
        (f"{label}: hosts starting to burn per round", " + ".join(map(str, chunks)), "hosts", ""),
        (f"{label}: fleet page fired + resolved, to {where}", f"{fleet_firing} + {fleet_resolved}", "", "1 + 1"),
        (f"{label}: hosts' own pages fired, other alerts, to {where}", f"{host_firing}, {other}", "", "0, 0"),
        (f"{label}: notifications to {where}", f"{sent}", "", "2"),
        (f"{label}: rounds, burning, failed; planting, rounds' wall time",
         f"{run.rounds}, {run.storm_rounds}, {len(run.errors)}", f"rounds; {planted:.0f} s, {run.seconds:.0f} s", ""),
    ]
