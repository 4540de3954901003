"""Burn rates and error budgets: exact numbers from pure functions and from probes planted in real stores."""

from fractions import Fraction

import pytest

from alerts.burn import budget_remaining, burn_rate, error_rate, evaluate, series_figures, sli_percent
from alerts.rollups import NO_ROLLUPS, roll_up
from alerts.sli import Counts
from alerts.slo import SLO
from tsdb import Point

NOW = 1_709_294_400 * 10**9  # 2024-03-01T12:00:00Z, on a whole minute
S = 10**9
HOSTILE = 'hv 2,"quoted"=\\tail ü🙂'
AVAILABILITY = SLO("libvirtd-availability", 99.9, "libvirtd_availability")

PURE = {
    "one bad probe in a hundred is an error rate of 0.01": (error_rate, Counts(99, 100), 99.9, 0.01),
    "one bad probe in a hundred against 99.9% burns at exactly 10": (burn_rate, Counts(99, 100), 99.9, 10.0),
    "one bad probe in a thousand against 99.9% burns at exactly 1": (burn_rate, Counts(999, 1000), 99.9, 1.0),
    "no bad probe burns at 0": (burn_rate, Counts(50, 50), 99.9, 0.0),
    "one bad in two thousand against 99.9% leaves exactly half the budget": (
        budget_remaining, Counts(1999, 2000), 99.9, 0.5),
    "one bad in a thousand against 99.9% leaves none of the budget": (budget_remaining, Counts(999, 1000), 99.9, 0.0),
    "two bad in a hundred against 99.9% overspends the budget nineteen times": (
        budget_remaining, Counts(98, 100), 99.9, -19.0),
    "a 28-day 99.5% objective with 1 bad in 400 leaves half": (budget_remaining, Counts(399, 400), 99.5, 0.5),
    "no events have no error rate": (error_rate, Counts(0, 0), 99.9, None),
    "no events have no burn rate": (burn_rate, Counts(0, 0), 99.9, None),
    "no events have no budget figure": (budget_remaining, Counts(0, 0), 99.9, None),
}


@pytest.mark.parametrize("function, counts, objective, expected", PURE.values(), ids=PURE.keys())
def test_pure_math(function, counts, objective, expected):
    result = function(counts) if function is error_rate else function(counts, objective)
    assert result == expected


SLI_PERCENT = {
    "three good in five is exactly 60 percent": (Counts(3, 5), 60.0),
    "two good in three is 100 x 2/3 correctly rounded": (Counts(2, 3), float(Fraction(200, 3))),
    "every event good is 100 percent": (Counts(1000, 1000), 100.0),
    "halves of a sum (a custom SLI) are figured as fractions": (Counts(0.5, 2.0), 25.0),
    "no events have no SLI": (Counts(0, 0), None),
}


@pytest.mark.parametrize("counts, expected", SLI_PERCENT.values(), ids=SLI_PERCENT.keys())
def test_the_sli_in_percent(counts, expected):
    assert sli_percent(counts) == expected


@pytest.mark.parametrize("objective", [99.9, 99.0, 99.5, 99.95, 99.999, 33.3])
def test_a_series_is_figured_to_the_same_floats_as_each_windows_counts(objective):
    import math
    import random

    rng = random.Random(objective)
    counts = [Counts(0, 0), Counts(2, 3), Counts(0.5, 2.0), Counts(1e15 - 1, 1e15), Counts(2.0**52, 2.0**52 + 3)]
    for _ in range(3000):
        total = rng.choice([rng.randint(1, 20), rng.randint(1, 10**6), rng.randint(1, 10**12)])
        good = total - rng.choice([0, 1, rng.randint(0, total)])
        counts.append(Counts(float(good), float(total)) if rng.random() < 0.95 else Counts(good + 0.25, total))
    slis, burns = series_figures([c.good for c in counts], [c.total for c in counts], objective)
    for counts_of, sli, burn in zip(counts, slis.tolist(), burns.tolist()):
        expected_sli, expected_burn = sli_percent(counts_of), burn_rate(counts_of, objective)
        assert (None if math.isnan(sli) else sli, None if math.isnan(burn) else burn) == \
            (expected_sli, expected_burn), counts_of


def probes(host, every_seconds, n, failed_at=()):
    """n probes on host, one every `every_seconds` before NOW (the k-th at NOW - k*every), failing at k in failed_at."""
    return [Point("libvirtd", {"host": host}, {"probe_ok": 0 if k in failed_at else 1}, NOW - k * every_seconds * S)
            for k in range(1, n + 1)]


# hv1: 100 probes in the last hour (every 36 s), the 1st (36 s ago) and the 50th (30 min ago) failed.
# HOSTILE: 2000 probes every 5 minutes (about 7 days), the 1000th failed (3.5 days ago).
PLANTED = probes("hv1", 36, 100, failed_at={1, 50}) + probes(HOSTILE, 300, 2000, failed_at={1000})


def burns(evaluation):
    return {w.window.name: (w.long_burn, w.short_burn, w.firing) for w in evaluation.windows}


@pytest.mark.influxdb
@pytest.mark.parametrize("rollups", [False, True], ids=["from raw points", "from rollups"])
def test_a_host_failing_two_probes_in_a_hundred_pages_and_tickets(store, rollups):
    store.write(PLANTED)
    coverage = NO_ROLLUPS
    if rollups:  # rolled up to NOW, 8 days back: the planted data is all in minute and hour rollups
        coverage = roll_up(store, AVAILABILITY, NOW + 60 * S, NO_ROLLUPS, backfill_seconds=8 * 86400,
                           chunk_seconds=86400)
        assert coverage.minute_until_ns == NOW and coverage.hour_until_ns == NOW - 3600 * S
    result = evaluate(store, AVAILABILITY, NOW, "hv1", coverage=coverage)
    assert result.period == Counts(98, 100)
    assert result.budget_remaining == -19.0
    # 5 minutes hold probes 1..8 (one bad); 30 minutes hold 1..50 (both bad: the 50th is 1800 s ago, and
    # windows include their start); an hour and more hold all 100.
    assert burns(result) == {
        "page-1h-5m": (20.0, 125.0, True), "page-6h-30m": (20.0, 40.0, True),
        "ticket-1d-2h": (20.0, 20.0, True), "ticket-3d-6h": (20.0, 20.0, True)}
    assert [w.window.name for w in result.firing] == list(burns(result))


@pytest.mark.influxdb
def test_a_hostile_host_name_evaluates_exactly_and_a_single_old_failure_only_spends_its_budget(store):
    store.write(PLANTED)
    result = evaluate(store, AVAILABILITY, NOW, HOSTILE)
    assert result.period == Counts(1999, 2000)
    assert result.budget_remaining == 0.5
    # the failure 3.5 days ago lies outside every window: nothing burns, nothing fires
    assert burns(result) == {name: (0.0, 0.0, False) for name in
                             ("page-1h-5m", "page-6h-30m", "ticket-1d-2h", "ticket-3d-6h")}


@pytest.mark.influxdb
def test_the_fleet_adds_every_host_before_dividing(store):
    store.write(PLANTED)
    result = evaluate(store, AVAILABILITY, NOW)
    assert result.period == Counts(2097, 2100)
    assert result.budget_remaining == float(1 - Fraction(3, 2100) * 1000)
    long_1h = burns(result)["page-1h-5m"][0]  # hv1's 100 probes and HOSTILE's 12 in the last hour, 2 bad
    assert long_1h == float(Fraction(2, 112) * 1000)


@pytest.mark.influxdb
def test_one_bad_probe_in_a_hundred_burns_10x_and_does_not_page(store):
    store.write(probes("hv1", 36, 100, failed_at={50}))
    result = evaluate(store, AVAILABILITY, NOW, "hv1")
    assert burns(result)["page-1h-5m"] == (10.0, 0.0, False)
    assert burns(result)["page-6h-30m"] == (10.0, 20.0, True)  # the failure, 30 minutes ago, is in 30 minutes
    assert result.budget_remaining == -9.0


def test_a_host_without_probes_has_no_rates_and_fires_nothing(duckdb_store):
    result = evaluate(duckdb_store, AVAILABILITY, NOW, "hv1")
    assert result.period == Counts() and result.budget_remaining is None
    assert result.firing == () and all(w.long_burn is None for w in result.windows)
