"""The windows catalog: the SRE workbook's table 5-8, its factors derived by one function."""

import pytest

from alerts.windows import alert_windows, burn_factor
from tsdb.times import parse_duration

FACTORS = {
    "a 30-day budget gives the workbook's factors 14.4, 6, 3 and 1 exactly": ("30d", [14.4, 6.0, 3.0, 1.0]),
    "a 28-day budget gives Sloth's factors 13.44, 5.6, 2.8 and 0.9333": ("28d", [13.44, 5.6, 2.8, 14 / 15]),
}


@pytest.mark.parametrize("period, factors", FACTORS.values(), ids=FACTORS.keys())
def test_factors(period, factors):
    assert [w.factor for w in alert_windows(period)] == factors


def test_the_catalog_pages_on_1h_and_6h_and_tickets_on_1d_and_3d_with_their_short_windows():
    assert [(w.name, w.long_seconds, w.short_seconds) for w in alert_windows("30d")] == [
        ("page-1h-5m", 3600, 300), ("page-6h-30m", 21600, 1800),
        ("ticket-1d-2h", 86400, 7200), ("ticket-3d-6h", 259200, 21600)]


BURN_FACTORS = {
    "2% of a 28-day budget in one hour is 13.44": (0.02, "28d", "1h", 13.44),
    "10% of a 28-day budget in three days is 0.9333": (0.1, "28d", "3d", 0.9333333333333333),
    "the whole budget in the whole period is 1": (1, "30d", "30d", 1.0),
    "half the budget in a day of a 30-day period is 15": ("0.5", "30d", "1d", 15.0),
}


@pytest.mark.parametrize("fraction, period, window, factor", BURN_FACTORS.values(), ids=BURN_FACTORS.keys())
def test_burn_factor(fraction, period, window, factor):
    assert burn_factor(fraction, parse_duration(period), parse_duration(window)) == factor


BAD = {
    "a period without a catalog is refused": lambda: alert_windows("7d"),
    "a duration without a unit is refused": lambda: parse_duration("30", whole=True),
    "a zero duration is refused": lambda: parse_duration("0d", whole=True),
    "a fractional duration is refused": lambda: parse_duration("1.5h", whole=True),
}


@pytest.mark.parametrize("call", BAD.values(), ids=BAD.keys())
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()


def test_rollups_lie_behind_the_settled_edge_and_the_interval_after_it():
    from alerts.rollups import LAG_SECONDS
    from alerts.windows import SETTLED_LAG_SECONDS

    assert LAG_SECONDS >= SETTLED_LAG_SECONDS + 10  # freshness reads one agent interval past a window's end
