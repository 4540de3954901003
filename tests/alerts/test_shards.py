"""Two shards of the alert engine over ONE real InfluxDB 1.6: each owns the hosts whose crc32 % 2 is its index
(alerts.shard) and pages only for them; the fleet-wide SLO alerts are shard 0's alone. Then `virtwatch alerts
--shard I/N --once` as an operator runs it, and a shard that does not exist refused.

The fleet is written as agents write it (tests/alerts/live_fleet.py: 40 hosts, each on its own 10 s schedule), the
engines are built as `virtwatch alerts` builds them (the shipped SLOs, rules and storm gate), each with its own
state_dir and receiver, and run in turn on one simulated clock, a round of each every ROUND_SECONDS. Nothing
asserts wall time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from alerts.engine import SLO_ALERTNAME
from alerts.shard import Shard
from live_fleet import S, Fleet, SimClock, alert_key, at, fleet_engine, notices, prefill_days, shipped_slos
from receivers import HTTPReceiver
from servers import free_port
from tsdb import Point
from tsdb.schema import EVENT_KINDS

pytestmark = [pytest.mark.slow, pytest.mark.influxdb]

SLOS = shipped_slos()
AVAILABILITY = SLOS["libvirtd-availability"]
HOSTS = 40
ROUND_SECONDS = 30          # each shard's rounds, as the shipped [alerts] interval_seconds; the two take turns
SIM_START = 1_780_000_020 * S  # on the rounds' grid
SHARDS = (Shard(0, 2), Shard(1, 2))
GIVE_UP_ROUNDS = 200        # a broken run stops here rather than running forever
VIRTWATCH = str(Path(sys.executable).with_name("virtwatch"))


@pytest.fixture
def receivers():
    """One webhook receiver per shard, so every notification says which shard sent it."""
    found = [HTTPReceiver(port=free_port()) for _ in SHARDS]
    for receiver in found:
        receiver.start()
    yield found
    for receiver in found:
        receiver.stop()


def start_shards(store, receivers, tmp_path):
    """Plant a fleet watched for two days and build one engine per shard on one simulated clock."""
    fleet = Fleet.healthy(HOSTS, seed=7, writers=4)
    prefill_days(store, fleet, list(SLOS.values()), SIM_START, days=2)
    clock = SimClock(at(SIM_START))
    engines = [fleet_engine(store, {"oncall": receiver.url + "/hook"}, tmp_path / f"shard-{shard.index}",
                            clock=clock, shard=shard) for shard, receiver in zip(SHARDS, receivers)]
    return fleet, clock, engines


def run_rounds(store, fleet, clock, engines, until) -> int:
    """Run the shards' rounds in turn, the fleet shipping up to each, until `until()` holds; return the rounds."""
    for rounds in range(1, GIVE_UP_ROUNDS + 1):
        clock.advance(ROUND_SECONDS / len(engines))
        fleet.ship_until(store, clock.ns)
        report = engines[rounds % len(engines)].run_round()
        assert report.error is None and report.delivery_failures == 0, report
        if until():
            return rounds
    pytest.fail(f"still not done after {GIVE_UP_ROUNDS} rounds")


def keys(receiver) -> list[tuple]:
    """(alertname, slo, severity, host or scope, status) of every alert of every notification a receiver got."""
    return [alert_key(alert) for notice in notices(receiver) for alert in notice.alerts]


def scope_of(key: tuple) -> str:
    return key[3]


# --- 1. daemons down on some hosts of both shards ---------------------------------------------------------------

DOWN_PER_SHARD = 4          # under the storm gate's 10 hosts: each pages on its own
OUTAGE_SECONDS = 420


def test_every_down_host_is_paged_by_exactly_the_shard_that_owns_it_and_the_fleet_by_shard_0(
        influxdb_store, receivers, tmp_path):
    fleet, clock, engines = start_shards(influxdb_store, receivers, tmp_path)
    owned = [[name for name in fleet.names if shard.owns(name)] for shard in SHARDS]
    assert sorted(len(names) for names in owned) == [20, 20] and set(owned[0]).isdisjoint(owned[1])
    down = {name for names in owned for name in names[:DOWN_PER_SHARD]}
    onset = SIM_START + 60 * S
    for name in down:
        fleet.daemon_down(name, onset, onset + OUTAGE_SECONDS * S)
    fleet_page = (SLO_ALERTNAME, AVAILABILITY.name, "page", "fleet")

    def over() -> bool:
        """Every down host's LibvirtdDown resolved, and the fleet's page too."""
        resolved = {key[3] for receiver in receivers for key in keys(receiver)
                    if key[0] == "LibvirtdDown" and key[4] == "resolved"}
        return resolved == down and (*fleet_page, "resolved") in keys(receivers[0])

    run_rounds(influxdb_store, fleet, clock, engines, over)

    # From the SLO definitions, over a fleet watched for two days, 8 of 40 hosts down for 7 minutes:
    # - each down host: LibvirtdDown (down > 5 s), and its availability (99.9%) burns the 1h/5m page within a
    #   minute (6 failed probes of ~366, 16x), sent once it waited storm_wait_seconds (4 hosts a shard: no storm);
    # - the fleet: 8 of 40 hosts failing every probe is 20% bad over 5m and, ~4.3 minutes in, 1.44% over 1h:
    #   the fleet's page, evaluated and sent by shard 0 only;
    # - latency (99%): 42 slow probes of ~360 over 1h is 11.7x, under the page's 14.4x. Freshness: agents write.
    for shard, receiver, mine in zip(SHARDS, receivers, owned):
        got = keys(receiver)
        firing = Counter((key[0], key[1], key[2], scope_of(key)) for key in got if key[4] == "firing")
        mine_down = down & set(mine)
        # every down host this shard owns: its LibvirtdDown paged once and resolved once, by this shard alone
        assert {k[3]: n for k, n in firing.items() if k[0] == "LibvirtdDown"} == {name: 1 for name in mine_down}
        assert sorted(k[3] for k in got if k[0] == "LibvirtdDown" and k[4] == "resolved") == sorted(mine_down)
        assert {k[3] for k in firing if k[:3] == (SLO_ALERTNAME, AVAILABILITY.name, "page")} - {"fleet"} == mine_down
        # nothing about a host it does not own, nor about a healthy one
        assert {scope_of(key) for key in got} <= mine_down | ({"fleet"} if shard.owns_fleet else set()), shard
        # the fleet-wide page: shard 0's, once, resolved once; shard 1 says nothing about the fleet
        fleet_keys = [key for key in got if scope_of(key) == "fleet"]
        if shard.owns_fleet:
            assert Counter(key[2:] for key in fleet_keys if key[2] == "page") == {
                ("page", "fleet", "firing"): 1, ("page", "fleet", "resolved"): 1}
        else:
            assert fleet_keys == []


# --- 2. a fleet-wide outage: one fleet page, from shard 0 ------------------------------------------------------

FLEET_OUTAGE_SECONDS = 120


def test_a_fleet_wide_outage_is_one_fleet_page_from_shard_0_and_one_shard_page_from_shard_1(influxdb_store, receivers,
                                                                                       tmp_path):
    fleet, clock, engines = start_shards(influxdb_store, receivers, tmp_path)
    onset = SIM_START + 60 * S
    fleet.probes_fail(onset, onset + FLEET_OUTAGE_SECONDS * S)  # every host's probes late: a fleet-wide cause
    quiet = [0]

    def over() -> bool:
        """The outage is over and, for four rounds of each shard, nothing fires and no host is held."""
        busy = clock.ns < onset + FLEET_OUTAGE_SECONDS * S or any(
            engine.tracker.firing() or engine.storm.held(AVAILABILITY.name) for engine in engines)
        quiet[0] = 0 if busy else quiet[0] + 1
        return quiet[0] >= 8

    run_rounds(influxdb_store, fleet, clock, engines, over)
    # every host of both shards failed 12 probes at once: each shard's storm gate holds its hosts (20 start in the
    # same round or two: over 10 of them and over 10% of its hosts) instead of paging each; the fleet burns
    # (12 of ~372 probes over 1h, 32x, and every probe over 5m) and its page is shard 0's: one page, one resolve.
    # Shard 1 owns no fleet-wide alert: its storm is one page scoped to the shard (its hosts held, as a storm
    # within one shard alone must page too), one resolve. (Each shard's storm gate counts its own hosts: shard 0's
    # page says "20 of 20 hosts" though all 40 burn; its description quotes the fleet's own burn.)
    fleet_page = (SLO_ALERTNAME, AVAILABILITY.name, "page", "fleet")
    shard_page = (SLO_ALERTNAME, AVAILABILITY.name, "page", "shard")
    assert [(notice.status, [alert_key(a) for a in notice.alerts]) for notice in notices(receivers[0])] == [
        ("firing", [(*fleet_page, "firing")]), ("resolved", [(*fleet_page, "resolved")])]
    assert [(notice.status, [alert_key(a) for a in notice.alerts]) for notice in notices(receivers[1])] == [
        ("firing", [(*shard_page, "firing")]), ("resolved", [(*shard_page, "resolved")])]
    [firing] = [notice for notice in notices(receivers[1]) if notice.status == "firing"]
    assert "of shard 1/2 burn their error budget together" in firing.alerts[0]["annotations"]["summary"]


# --- 3. the command: `virtwatch alerts --shard I/N --once` ----------------------------------------------------


def config_for(tmp_path, influxdb_database, receiver, name: str) -> Path:
    server, database = influxdb_database
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""[store]
url = "influxdb://127.0.0.1:{server.port}/{database}"

[alerts]
state_dir = {json.dumps(str(tmp_path / name))}
daemon_down_after_seconds = 5

[[alerts.receivers]]
name = "oncall"
type = "webhook"
url = "{receiver.url}/hook"
timeout_seconds = 5
""", encoding="utf-8")
    return path


def virtwatch_alerts(*args) -> subprocess.CompletedProcess:
    return subprocess.run([VIRTWATCH, "alerts", *args], capture_output=True, text=True, timeout=120)


def test_virtwatch_alerts_once_runs_one_shard_and_refuses_one_that_does_not_exist(influxdb_database,
                                                                                   influxdb_store, receivers,
                                                                                   tmp_path):
    names = [f"hv-{i:04d}" for i in range(HOSTS)]
    down = names[::5]  # 8 hosts, of both shards
    since = time.time_ns() - 60 * S  # the command reads with the real clock: down for a minute
    influxdb_store.write([Point("event", {"host": name, "kind": "daemon_down",
                                          "severity": EVENT_KINDS["daemon_down"].severity},
                                {"message": "libvirtd down: connection refused", "count": 1}, since)
                          for name in down])
    for shard, receiver in zip(SHARDS, receivers):
        config = config_for(tmp_path, influxdb_database, receiver, f"shard-{shard.index}")
        result = virtwatch_alerts("--once", "--shard", str(shard), "--config", str(config))
        mine = sorted(name for name in down if shard.owns(name))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"shard {shard}: evaluated ") and f"{len(mine)} alerts firing" in result.stdout
        assert f"alert engine shard {shard}: the hosts whose crc32 % 2 is {shard.index}" in result.stderr
        assert sorted(key[3] for key in keys(receiver)) == mine and mine

    config = config_for(tmp_path, influxdb_database, receivers[0], "no-such-shard")
    refused = virtwatch_alerts("--once", "--shard", "2/2", "--config", str(config))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == "--shard '2/2': the index must be below the number of shards (0/2 to 1/2)\n"
    assert not (tmp_path / "no-such-shard").exists()
