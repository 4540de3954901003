"""analysis.triggered: the signal around failures against the signal around random host-steps."""

import numpy as np
import pytest

from analysis.triggered import triggered_average, windows


def test_windows_take_the_steps_around_each_cell_and_are_missing_beyond_the_range():
    values = np.arange(10.0).reshape(2, 5)
    around = windows(values, np.array([0, 1]), np.array([0, 4]), half_steps=1)
    assert np.isnan(around[0, 0]) and around[0, 1:].tolist() == [0.0, 1.0]
    assert around[1, :2].tolist() == [8.0, 9.0] and np.isnan(around[1, 2])


def test_a_load_that_rises_before_failures_stands_above_the_baseline_band_only_near_them():
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 1.0, size=(20, 2000))
    hosts = rng.integers(0, 20, size=60)
    steps = rng.integers(20, 1980, size=60)
    for h, s in zip(hosts, steps):
        values[h, s - 2:s + 1] += 5.0  # two steps before the failure and its own step
    result = triggered_average("host.load1", values, hosts, steps, step_seconds=300, window_seconds=3000)
    frame = result.frame.set_index("offset_seconds")
    near = frame.loc[[-600, -300, 0]]
    far = frame.loc[[-3000, -1500, 1500, 3000]]
    assert (near["failure_lower"] > near["baseline_upper"]).all()
    assert (far["failure_lower"] < far["baseline_upper"]).all()
    assert (frame["failure_n"] == 60).all()
    assert result.baseline_samples == 300  # five draws per failure, above the minimum of 200


def test_the_baseline_has_at_least_the_minimum_draws_and_comes_from_observed_cells_only():
    values = np.full((3, 50), np.nan)
    values[1, :] = 7.0
    result = triggered_average("x.y", values, np.array([1]), np.array([25]), 60, window_seconds=120,
                               baseline_min=50)
    assert result.baseline_samples == 50
    assert result.frame["baseline_mean"].tolist() == pytest.approx([7.0] * 5)
    assert result.frame["offset_seconds"].tolist() == [-120, -60, 0, 60, 120]


def test_with_no_failures_the_failure_curve_is_missing_but_the_baseline_is_not():
    values = np.ones((2, 30))
    result = triggered_average("x.y", values, np.zeros(0, int), np.zeros(0, int), 60, window_seconds=60)
    assert result.frame["failure_mean"].isna().all()
    assert result.frame["baseline_mean"].tolist() == pytest.approx([1.0] * 3)


def test_a_negative_window_is_refused_by_name():
    with pytest.raises(ValueError, match="window_seconds"):
        triggered_average("x.y", np.ones((1, 3)), np.zeros(0, int), np.zeros(0, int), 60, window_seconds=-60)
