"""analysis.buckets: quantile buckets of exposure, failures per bucket, the lag, top against bottom."""

import numpy as np
import pytest

from analysis.buckets import bucket_rates, lagged, quantile_cuts


def test_continuous_load_is_cut_into_buckets_of_equal_exposure():
    values = np.arange(1000.0)
    cuts = quantile_cuts(values, 4)
    assert cuts.tolist() == [250.0, 500.0, 750.0]


def test_a_mostly_zero_queue_gets_fewer_buckets_and_never_an_empty_one():
    values = np.array([0.0] * 40 + [1.0] * 30 + [2.0] * 20 + [5.0] * 10)
    cuts = quantile_cuts(values, 4)
    assert cuts.tolist() == [1.0, 2.0]  # quartile cuts nearest 25% and 75% of the exposure: 40% and 70% below
    counts = np.bincount(np.searchsorted(cuts, values, side="right"))
    assert counts.tolist() == [40, 30, 30]
    assert quantile_cuts(np.array([0.0] * 90 + [3.0] * 10), 4).tolist() == [3.0]


def test_a_constant_signal_has_no_cut_and_missing_values_are_ignored():
    assert quantile_cuts(np.array([3.0, 3.0, np.nan]), 4).size == 0
    assert quantile_cuts(np.array([np.nan]), 4).size == 0


def test_lag_moves_the_load_one_step_later_in_time():
    values = np.array([[1.0, 2.0, 3.0]])
    assert np.isnan(lagged(values, 1)[0, 0])
    assert lagged(values, 1)[0, 1:].tolist() == [1.0, 2.0]
    assert lagged(values, 0) is values


def test_failures_and_exposure_are_counted_per_bucket_with_rates_per_host_day():
    # one host, 8 steps of a day each: load 0 on four steps (one failure), load 10 on four steps (six failures)
    values = np.array([[0.0, 0, 0, 0, 10, 10, 10, 10]])
    failures = np.array([[1, 0, 0, 0, 2, 2, 1, 1]])
    rates = bucket_rates("host.load1", values, failures, step_seconds=86400, lag_steps=0, n_buckets=2)
    table = rates.buckets
    assert table["exposure_steps"].tolist() == [4, 4]
    assert table["failures"].tolist() == [1, 6]
    assert table["rate_per_host_day"].tolist() == pytest.approx([0.25, 1.5])
    assert (table["lower"].tolist(), table["upper"].tolist()) == ([0.0, 10.0], [10.0, 10.0])
    assert (table["rate_lower"] <= table["rate_per_host_day"]).all()
    assert (table["rate_per_host_day"] <= table["rate_upper"]).all()
    assert rates.ratio.ratio == pytest.approx(6.0)
    assert rates.failures == 7 and rates.failures_without_signal == 0


def test_with_a_lag_a_failure_is_attributed_to_the_load_of_the_step_before():
    values = np.array([[10.0, 0.0, 10.0, 0.0]])
    failures = np.array([[0, 1, 0, 1]])  # every failure follows a loaded step
    same_step = bucket_rates("x.y", values, failures, 60, lag_steps=0, n_buckets=2)
    step_before = bucket_rates("x.y", values, failures, 60, lag_steps=1, n_buckets=2)
    assert same_step.buckets["failures"].tolist() == [2, 0]
    assert step_before.buckets["failures"].tolist() == [0, 2]
    assert step_before.buckets["exposure_steps"].sum() == 3  # the first step has no step before it


def test_failures_where_the_signal_is_missing_are_counted_apart():
    values = np.array([[1.0, np.nan, 2.0, 3.0]])
    failures = np.array([[0, 2, 1, 0]])
    rates = bucket_rates("x.y", values, failures, 60, lag_steps=0, n_buckets=2)
    assert rates.failures == 1 and rates.failures_without_signal == 2


def test_a_constant_signal_has_one_bucket_and_no_ratio():
    rates = bucket_rates("x.y", np.ones((2, 5)), np.ones((2, 5), dtype=int), 60, lag_steps=0)
    assert len(rates.buckets) == 1 and rates.ratio is None
    assert rates.edge_exposure_host_days() == 0.0


@pytest.mark.parametrize("kwargs, name", [({"n_buckets": 1}, "n_buckets"), ({"lag_steps": -1}, "lag_steps")])
def test_a_bad_bucket_setting_is_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        bucket_rates("x.y", np.ones((1, 3)), np.zeros((1, 3), dtype=int), 60, **kwargs)
