"""Every guest failure the simulator draws is an event the agent would write, and one bad domain-stability event:
the simulated SLI, counted by alerts.sli and by the history's rollups, agrees with the simulated truth."""

from simulated_fleets import busy_spec

from alerts.sli import read_rollups
from alerts.slo import SLO
from simulator import simulate, write_simulation
from simulator.rollups import roll_up_history
from tsdb.embedded import EmbeddedStore
from tsdb.schema import GUEST_FAILURE_KINDS

STABILITY = SLO("stability", 99.9, "domain_stability")


def test_the_stability_sli_of_a_simulated_history_counts_exactly_its_guest_failures(tmp_path):
    sim = simulate(busy_spec(hosts=3, days=2.0, host_prefix='hv "sim", ü-'))
    truth = sim.failures[sim.failures["kind"].isin(GUEST_FAILURE_KINDS)]
    assert len(truth) >= 5 and set(truth["kind"]) == set(GUEST_FAILURE_KINDS)
    with EmbeddedStore(str(tmp_path / "history.duckdb")) as store:
        write_simulation(store, sim)
        events = store.events(0, sim.end_ns, where={"kind": list(GUEST_FAILURE_KINDS)})
        assert sorted(zip(events["host"], events["domain"], events["time"].astype("int64"))) == sorted(
            zip(truth["host"], truth["domain"], truth["time_ns"]))
        roll_up_history(store, [STABILITY], sim.end_ns + 120 * 10**9, 2 * 86400)
        rolled = read_rollups(store, STABILITY, 0, sim.end_ns + 60 * 10**9)
    expected = truth.groupby("host").size().to_dict()
    assert {host: counts.bad for host, counts in rolled.hosts.items() if counts.bad} == expected
    assert all(counts.total > 1000 for counts in rolled.hosts.values())
