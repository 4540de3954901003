"""Planted truth: the analysis finds what the simulator planted (simulator.HAZARD_MODEL), and nothing else.

The hazard acts within a step on the value written at that step ("the point at T_t carries the signal value
that drove it"), so these tests analyse with lag_steps=0 and a one-step horizon at the simulation's own step:
the settings under which the analysis measures exactly the planted quantity. Only restarts are drawn
(base_rate_per_day={"restart": ...}) so that every restart is a hazard draw; incidents are off.
"""

import pytest

from analysis import EFFECT, NO_SIGNIFICANT_EFFECT, NOT_ENOUGH_FAILURES, analyze, load_inputs
from analysis_grids import simulation_grid
from simulator import Effect, FleetSpec, simulate, write_simulation

STEP_SECONDS = 300
END_NS = 1_717_200_000 * 10**9  # 2024-06-01, a step boundary
PLANTED = dict(lag_steps=0, horizon_seconds=STEP_SECONDS, lead_seconds=(0, 300, 900, 1800))


def fleet(seed: int, factor: float = 4.0, signal: str = "libvirtd.job_queue_depth", hosts: int = 20,
          days: float = 14, rate_per_day: float = 1.0):
    """Return a simulation whose restarts are `factor` times as frequent while `signal` is in its top quarter."""
    effect = Effect(signal, "restart", factor=factor, threshold_quantile=0.75)
    return simulate(FleetSpec(hosts=hosts, days=days, seed=seed, step_seconds=STEP_SECONDS, end_ns=END_NS,
                              domains_per_host=0, incidents=False, base_rate_per_day={"restart": rate_per_day},
                              effects=(effect,)))


def analyse_through(store, sim):
    """Write a simulation into a store and analyse restarts over its whole range, fleet-wide, read back."""
    write_simulation(store, sim, batch_steps=288)
    inputs = load_inputs(store, None, sim.start_ns, sim.end_ns, kinds="restart", step_seconds=STEP_SECONDS)
    return analyze(inputs, **PLANTED)


def assert_recovered(result, factor=4.0, signal="libvirtd.job_queue_depth"):
    """The planted factor lies in the signal's interval, the verdict names the signal, and so does the finding."""
    row = result.ratios.set_index("signal").loc[signal]
    assert row["lower"] <= factor <= row["upper"], row
    assert result.verdict.status == EFFECT and result.verdict.signal == signal
    assert result.finding.startswith("libvirtd restarts were ")


@pytest.mark.parametrize("seed", [1, 2])
def test_the_planted_factor_is_inside_its_interval_read_back_from_duckdb(duckdb_store, seed):
    sim = fleet(seed)
    result = analyse_through(duckdb_store, sim)
    assert_recovered(result)
    assert result.failures == len(sim.failures)  # every planted restart was read back and placed
    assert result.leads.leaders.loc[0, "signal"] == "libvirtd.job_queue_depth"
    assert set(result.hosts) == set(sim.hosts)


@pytest.mark.influxdb
def test_the_planted_factor_is_inside_its_interval_read_back_from_influxdb(influxdb_store):
    sim = fleet(3)
    result = analyse_through(influxdb_store, sim)
    assert_recovered(result)
    assert result.failures == len(sim.failures)


@pytest.mark.parametrize("signal", ["libvirtd.job_queue_depth", "host.load1", "libvirtd.probe_latency_ms",
                                    "host.libvirt_calls_per_second"])
def test_the_signal_carrying_the_effect_ranks_first_among_correlated_signals(signal):
    result = analyze(simulation_grid(fleet(4, signal=signal, hosts=30)), **PLANTED)
    assert result.leads.leaders.loc[0, "signal"] == signal
    assert result.leads.leaders.loc[0, "significant"]
    assert_recovered(result, signal=signal)


@pytest.mark.slow
def test_with_a_factor_of_one_nothing_is_significant_in_at_least_95_percent_of_40_seeds():
    claimed, tested = [], 0
    for seed in range(40):
        result = analyze(simulation_grid(fleet(100 + seed, factor=1.0)), **PLANTED, seed=seed)
        tested += result.verdict.status in (EFFECT, NO_SIGNIFICANT_EFFECT)
        if result.verdict.status == EFFECT or result.leads.by_lead["significant"].any():
            claimed.append(seed)
    assert tested == 40  # each fleet had failures and exposure enough to be tested: the check can fail
    assert len(claimed) <= 2, claimed


def test_thin_data_gives_not_enough_failures_not_an_effect(duckdb_store):
    sim = fleet(5, factor=4.0, hosts=2, days=2, rate_per_day=0.5)
    result = analyse_through(duckdb_store, sim)
    assert len(sim.failures) < 10
    assert result.verdict.status == NOT_ENOUGH_FAILURES
    assert result.finding.startswith("Too few libvirtd restarts to tell")
    assert not result.verdict.is_effect
