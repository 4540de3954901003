"""The leak-sign math (alerts.leaks): noise, restarts, flat lines, a step, a sawtooth, and exact projections."""

from __future__ import annotations

import math
import random

import pytest

from alerts.leaks import LeakPolicy, fd_forecast, fit_line, leak_signs, rss_trend, since_start

S = 10**9
MIB = 2**20
T0 = 1_800_000_000 * S


def minutes(count: int, every_seconds: int = 60) -> list[int]:
    """Times of `count` points `every_seconds` apart from T0."""
    return [T0 + i * every_seconds * S for i in range(count)]


def test_a_line_through_exact_points_has_their_slope_and_r2_of_one():
    times = minutes(61)
    line = fit_line(times, [50 + 2 * i for i in range(61)])  # 2 per minute: 120/h
    assert line.slope_per_hour == pytest.approx(120)
    assert line.r2 == pytest.approx(1)
    assert line.at(times[-1]) == pytest.approx(170)
    assert (line.points, line.span_seconds) == (61, 3600)


def test_fewer_than_three_points_or_no_time_span_fit_no_line():
    assert fit_line(minutes(2), [1, 2]) is None
    assert fit_line([T0, T0, T0], [1, 2, 3]) is None
    assert fit_line(minutes(4), [1, float("nan"), None, 4]) is None  # two numbers left


def test_descriptors_rising_steadily_project_the_exact_time_they_reach_the_limit():
    times = minutes(61)  # one hour, 300/h from 100: 400 now, 600 to go to 1000 at 300/h = 2 h
    forecast = fd_forecast(times, [100 + 5 * i for i in range(61)], [1000] * 61)
    assert forecast.open_fds == 400 and forecast.max_fds == 1000 and forecast.share == 0.4
    assert forecast.seconds_to_limit == pytest.approx(2 * 3600)
    assert forecast.limit_at_ns() == pytest.approx(times[-1] + 2 * 3600 * S, abs=S // 1000)


def test_the_fit_covers_only_the_newest_fd_fit_seconds():
    # flat for two hours, then 600/h for the last hour: the projection uses the last hour's slope only
    values = [100] * 120 + [100 + 10 * i for i in range(1, 61)]
    forecast = fd_forecast(minutes(180), values, [2000] * 180)
    assert forecast.line.slope_per_hour == pytest.approx(600, rel=0.02)
    assert forecast.seconds_to_limit == pytest.approx((2000 - 700) / 600 * 3600, rel=0.02)


def test_noise_on_a_flat_line_projects_nothing_and_is_no_sign():
    rng = random.Random(17)
    values = [300 + rng.gauss(0, 4) for _ in range(61)]
    forecast = fd_forecast(minutes(61), values, [1024] * 61)
    assert forecast.seconds_to_limit is None
    assert leak_signs(forecast, None) == []


def test_a_flat_line_far_from_its_limit_is_no_sign_and_near_it_is_one_without_a_projection():
    far = fd_forecast(minutes(61), [200] * 61, [8000] * 61)
    assert far.seconds_to_limit is None and leak_signs(far, None) == []
    near = fd_forecast(minutes(61), [7600] * 61, [8000] * 61)
    [sign] = leak_signs(near, None)
    assert sign.resource == "fds"
    assert sign.summary == "libvirtd holds 7,600 of 8,000 file descriptors (95%)"
    assert sign.figures == {"open_fds": 7600, "max_fds": 8000, "share": 0.95}


def test_a_step_of_clients_that_stay_connected_is_not_a_leak():
    # 100 fds, then 300 clients connect at once and stay: the line through the hour would reach 1024 within the
    # horizon, but a step is not explained by a line (r² about 0.75 at most)
    values = [100] * 30 + [400] * 31
    step = fd_forecast(minutes(61), values, [1024] * 61)
    assert step.line.r2 < 0.76
    assert step.seconds_to_limit is None and leak_signs(step, None) == []
    naive = fd_forecast(minutes(61), values, [1024] * 61, LeakPolicy(fd_min_r2=0.01))
    assert naive.seconds_to_limit < LeakPolicy().fd_horizon_seconds  # what the r² test keeps from paging


def test_a_leak_projected_within_the_horizon_is_a_sign_with_its_figures_in_the_sentence():
    # 310/h for the last hour, 7,910 of 8,000 now: 90 to go at 310/h is 17.4 min
    values = [7910 - 310 * (60 - i) / 60 for i in range(61)]
    forecast = fd_forecast(minutes(61), values, [8000] * 61)
    [sign] = leak_signs(forecast, None)
    assert sign.summary == ("libvirtd holds 7,910 of 8,000 file descriptors (99%), rising 310/h, at the limit in "
                            "17 min")
    assert sign.figures["seconds_to_limit"] == pytest.approx(90 / 310 * 3600)


def test_a_projection_beyond_the_horizon_far_from_the_limit_is_no_sign():
    values = [1000 + i for i in range(61)]  # 60/h at 1,060 of 8,000: 115 h away
    forecast = fd_forecast(minutes(61), values, [8000] * 61)
    assert forecast.seconds_to_limit == pytest.approx((8000 - 1060) / 60 * 3600)
    assert leak_signs(forecast, None) == []


def test_descriptors_at_the_limit_say_so():
    values = [900 + 2 * i for i in range(51)] + [1000] * 10
    [sign] = leak_signs(fd_forecast(minutes(61), values, [1000] * 61), None)
    assert sign.summary.startswith("libvirtd holds 1,000 of 1,000 file descriptors (100%)")


def test_no_limit_means_no_forecast():
    assert fd_forecast(minutes(3), [10, 20, 30], [float("nan")] * 3) is None
    assert fd_forecast(minutes(3), [10, 20, 30], [0, 0, 0]) is None


def test_a_restart_cuts_the_points_at_the_newest_process():
    starts = [1000.0] * 5 + [None] + [5000.0] * 4 + [None]
    assert since_start(minutes(11), starts) == 6


def test_two_restarts_keep_only_the_last_process():
    starts = [1000.0] * 3 + [2000.0] * 3 + [3000.0] * 3
    assert since_start(minutes(9), starts) == 6


def test_a_start_time_that_drifts_by_a_second_is_the_same_process():
    # /proc/stat's btime is whole seconds and moves when the clock is slewed
    starts = [1000.0, 1000.0, 1001.0, 1000.5, 1001.0]
    assert since_start(minutes(5), starts) == 0
    assert since_start(minutes(5), [1000.0, 1000.0, 1002.5, 1002.5, 1002.5]) == 2


def test_a_leak_before_a_restart_is_no_sign_after_it():
    times = minutes(120)
    values = [100 + 10 * i for i in range(60)] + [100] * 60  # leaked 600, restarted, flat since
    starts = [1000.0] * 60 + [9000.0] * 60
    first = since_start(times, starts)
    forecast = fd_forecast(times[first:], values[first:], [1024] * (120 - first))
    assert first == 60 and forecast.seconds_to_limit is None and leak_signs(forecast, None) == []
    everything = fd_forecast(times, values, [1024] * 120, LeakPolicy(fd_fit_seconds=7200))
    assert everything.line.slope_per_hour < 0  # mixing the two processes would have said "falling", not "flat"


def test_steady_memory_growth_over_hours_is_a_sign():
    rng = random.Random(3)
    times = minutes(4 * 60)  # 4 h, 12 MiB/h with noise of 1 MiB
    values = [300 * MIB + 12 * MIB * i / 60 + rng.gauss(0, MIB) for i in range(240)]
    line = rss_trend(times, values)
    [sign] = leak_signs(None, line)
    assert sign.resource == "rss"
    assert line.slope_per_hour == pytest.approx(12 * MIB, rel=0.02)
    assert sign.summary == (f"libvirtd's resident memory grew steadily by {line.slope_per_hour / MIB:.1f} MiB/h over "
                            f"4.0 h (r² {line.r2:.2f})")
    assert line.r2 > 0.9


def test_memory_growth_over_too_short_a_span_is_not_judged():
    times = minutes(2 * 60)  # 2 h < rss_min_hours (3)
    assert rss_trend(times, [300 * MIB + 50 * MIB * i / 60 for i in range(120)]) is None


def test_a_sawtooth_of_memory_is_not_steady_growth():
    # a cache that fills for 30 minutes at 40 MiB/h and is trimmed back, eight times over 4 h
    times = minutes(4 * 60)
    values = [300 * MIB + 40 * MIB * (i % 30) / 60 for i in range(240)]
    line = rss_trend(times, values)
    assert line.r2 < 0.1
    assert leak_signs(None, line) == []


def test_a_step_of_memory_is_not_steady_growth():
    times = minutes(4 * 60)
    values = [300 * MIB] * 120 + [400 * MIB] * 120  # 100 MiB at once, then flat: 50 MiB/h through the 4 h
    line = rss_trend(times, values)
    assert line.slope_per_hour > 8 * MIB and line.r2 < 0.76
    assert leak_signs(None, line) == []


def test_slow_memory_growth_below_the_threshold_is_no_sign():
    times = minutes(4 * 60)
    line = rss_trend(times, [300 * MIB + 4 * MIB * i / 60 for i in range(240)])  # 4 MiB/h < 8 MiB/h
    assert line.r2 == pytest.approx(1) and leak_signs(None, line) == []


@pytest.mark.parametrize("field, value", [("fd_share", 0), ("fd_share", 1.5), ("fd_horizon_seconds", -1),
                                          ("fd_fit_seconds", True), ("fd_min_rise", 0), ("fd_min_r2", 2),
                                          ("rss_min_hours", math.inf), ("rss_min_r2", 0)])
def test_a_policy_out_of_range_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        LeakPolicy(**{field: value})


def test_the_lookback_covers_the_longest_fit_with_room():
    assert LeakPolicy().lookback_seconds == 1.5 * 3 * 3600
    assert LeakPolicy(fd_fit_seconds=8 * 3600).lookback_seconds == 1.5 * 8 * 3600
