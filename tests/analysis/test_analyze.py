"""analysis.correlation.analyze on grids from a known hazard (tests/analysis/conftest.py), no store."""

import math

import numpy as np
import pytest

from analysis import EFFECT, NO_SIGNIFICANT_EFFECT, NOT_ENOUGH_EXPOSURE, NOT_ENOUGH_FAILURES, analyze
from analysis.stats import holm
from analysis_grids import failures_grid, hazard_grid


def test_a_planted_factor_of_four_is_inside_the_interval_and_named_in_the_finding():
    result = analyze(hazard_grid(seed=1, factor=4.0), lag_steps=0)
    row = result.ratios.set_index("signal").loc["libvirtd.job_queue_depth"]
    assert row["lower"] <= 4.0 <= row["upper"]
    assert result.verdict.status == EFFECT and result.verdict.signal == "libvirtd.job_queue_depth"
    assert result.finding.startswith("libvirtd restarts were ")
    assert "the job queue depth" in result.finding
    assert result.leads.leaders.loc[0, "signal"] == "libvirtd.job_queue_depth"


def test_the_result_holds_every_figure_the_page_draws():
    result = analyze(hazard_grid(seed=2, factor=3.0, hosts=10, days=7), lag_steps=0, window_seconds=1800)
    names = ["libvirtd.job_queue_depth", "host.load1", "libvirtd.clients", "libvirtd.rss_bytes"]
    assert list(result.rates) == names and list(result.triggered) == names
    assert result.ratios["signal"].tolist() == names
    assert result.triggered["host.load1"].frame["offset_seconds"].tolist() == list(range(-1800, 1801, 300))
    assert set(result.leads.by_lead["lead_seconds"]) == {0, 300, 900, 1800, 3600}
    assert result.failures == len(result.failure_events) > 0
    assert result.failing_hosts == result.failure_events["host"].nunique()
    assert (result.end - result.start).days == 7


def test_a_failure_kind_with_no_link_to_load_gives_no_effect():
    result = analyze(hazard_grid(seed=3, factor=1.0))
    assert result.verdict.status == NO_SIGNIFICANT_EFFECT
    assert result.finding.startswith("No significant evidence")
    assert not result.leads.by_lead["significant"].any()


@pytest.mark.slow
def test_with_no_effect_nothing_is_called_significant_in_at_least_95_percent_of_40_fleets():
    claimed, tested = 0, 0
    for seed in range(40):
        result = analyze(hazard_grid(seed=1000 + seed, factor=1.0), lag_steps=0, seed=seed)
        tested += result.verdict.status == NO_SIGNIFICANT_EFFECT or result.verdict.status == EFFECT
        claimed += result.verdict.status == EFFECT or bool(result.leads.by_lead["significant"].any())
    assert tested == 40  # every fleet had enough failures and exposure to be tested: the check could fail
    assert claimed <= 2


def test_a_handful_of_failures_gives_not_enough_failures_even_at_a_tenfold_effect():
    grid = hazard_grid(seed=4, factor=10.0, hosts=2, days=2, rate_per_day=0.3)
    result = analyze(grid, lag_steps=0)
    assert 0 < result.failures < 10
    assert result.verdict.status == NOT_ENOUGH_FAILURES
    assert result.finding.startswith("Too few libvirtd restarts to tell")


def test_many_failures_on_one_host_day_give_not_enough_exposure_not_an_effect():
    grid = hazard_grid(seed=5, factor=4.0, hosts=1, days=1, rate_per_day=80.0)
    result = analyze(grid, lag_steps=0)
    assert result.failures >= 10
    assert result.verdict.status == NOT_ENOUGH_EXPOSURE
    assert not result.verdict.is_effect


def test_no_failures_at_all_give_not_enough_failures():
    values = {"host.load1": np.random.default_rng(0).normal(size=(4, 600))}
    result = analyze(failures_grid(values, np.zeros((4, 600), dtype=int)))
    assert result.verdict.status == NOT_ENOUGH_FAILURES and result.failures == 0
    assert "0 restarts on 0 hosts" in result.finding


def test_a_signal_that_never_varies_is_marked_and_left_out_of_the_adjustment():
    grid = hazard_grid(seed=6, factor=4.0, hosts=10, days=7)
    grid.values["host.load1"] = np.full(grid.failures.shape, 2.0)
    result = analyze(grid, lag_steps=0)
    row = result.ratios.set_index("signal").loc["host.load1"]
    assert row["status"] == "no_variation" and math.isnan(row["p_adjusted"])
    assert "adjusted over 3 signals at lag 0 by circular shifts of the failures" in result.finding


@pytest.mark.parametrize("overrides, name", [
    ({"lag_steps": -1}, "lag_steps"), ({"lag_steps": (0, -1)}, "lag_steps"), ({"lag_steps": ()}, "lag_steps"),
    ({"alpha": 1.5}, "alpha"), ({"bogus": 1}, "bogus"),
    ({"min_bucket_host_days": -1}, "min_bucket_host_days"),
])
def test_a_bad_setting_is_refused_by_name(overrides, name):
    with pytest.raises(ValueError, match=name):
        analyze(hazard_grid(seed=7, hosts=2, days=1), **overrides)


def test_something_other_than_inputs_or_a_grid_is_refused():
    with pytest.raises(ValueError, match="data"):
        analyze({"host.load1": [1, 2, 3]})


def test_by_default_lags_0_and_1_are_both_looked_at_and_the_one_carrying_an_in_step_effect_is_named():
    result = analyze(hazard_grid(seed=1, factor=4.0))
    assert result.settings.lags == (0, 1) and set(result.ratios_by_lag) == {0, 1}
    assert result.lag_steps == 0 and result.verdict.signal == "libvirtd.job_queue_depth"
    assert "in 5-min steps in which the job queue depth" in result.finding
    assert "at lags 0 and 1" in result.finding


def test_the_interval_beside_every_verdict_comes_from_the_test_that_decides_it():
    for seed, factor in ((1, 4.0), (3, 1.0), (8, 1.6)):
        result = analyze(hazard_grid(seed=seed, factor=factor, hosts=15, days=7))
        for table in result.ratios_by_lag.values():
            for row in table.itertuples():
                if row.status == EFFECT:  # an effect always comes with an interval that excludes 1
                    assert row.lower > 1 or row.upper < 1, row
                    assert row.p_shift <= 0.05 and row.p_adjusted < 0.025
                if row.status in (EFFECT, NO_SIGNIFICANT_EFFECT):
                    assert row.lower <= row.ratio <= row.upper
                    if abs(math.log(row.null_ratio)) < 0.01:  # shifts centred on 1: the interval inverts the test
                        assert (row.lower > 1 or row.upper < 1) == (row.p_shift <= 0.05), row


def test_the_ranking_never_claims_a_signal_precedes_failures_beside_no_effect():
    result = analyze(hazard_grid(seed=3, factor=1.0))
    assert result.verdict.status == NO_SIGNIFICANT_EFFECT
    assert not result.leads.leaders["precedes"].any()
    effect = analyze(hazard_grid(seed=1, factor=4.0))
    assert effect.leads.leaders.set_index("signal").loc["libvirtd.job_queue_depth", "precedes"]
    no_effect = set(effect.ratios.loc[effect.ratios["status"] != EFFECT, "signal"])
    assert not effect.leads.leaders[effect.leads.leaders["signal"].isin(no_effect)]["precedes"].any()


@pytest.mark.slow
def test_looking_at_two_lags_keeps_false_positives_at_5_percent_over_40_fleets():
    claimed, tested = 0, 0
    for seed in range(40):
        result = analyze(hazard_grid(seed=2000 + seed, factor=1.0), seed=seed)
        tested += result.verdict.status in (NO_SIGNIFICANT_EFFECT, EFFECT)
        claimed += result.verdict.status == EFFECT or bool(result.leads.by_lead["significant"].any())
    assert tested == 40
    assert claimed <= 2


def test_a_restart_storm_at_high_load_alone_is_not_called_an_effect():
    """24 restarts in one hour on one host while its queue is high, on top of restarts unrelated to load."""
    exact_alone, verdicts = 0, 0
    for seed in range(10):
        grid = hazard_grid(seed=seed, factor=1.0, rate_per_day=0.2, hosts=20)
        values = {name: v.copy() for name, v in grid.values.items()}
        queue, failures = values["libvirtd.job_queue_depth"], grid.failures.copy()
        queue[0, 2000:2012] = np.maximum(queue[0, 2000:2012], np.quantile(queue, 0.9))
        failures[0, 2000:2012] += 2
        result = analyze(failures_grid(values, failures), lag_steps=0)
        exact_alone += bool((holm(result.ratios["p_value"].to_numpy()) < 0.025).any())
        verdicts += result.verdict.is_effect
    assert exact_alone >= 8  # the Poisson test alone takes the storm for an effect
    assert verdicts <= 2     # the shifts move the storm as one block and see a coincidence
