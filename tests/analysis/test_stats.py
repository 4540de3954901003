"""analysis.stats: Garwood intervals, the conditional rate ratio test, AUC, Holm and Benjamini-Hochberg."""

import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats import (Ordering, PositiveSets, RankedScores, auc_mann_whitney, benjamini_hochberg,
                            distinct_counts, holm, mean_interval, midranks, poisson_interval, poisson_intervals,
                            rate_ratio_test)


@pytest.mark.parametrize("count, lower, upper", [
    (0, 0.0, 3.6889),     # Garwood 1936; the "rule of three" bound 3.69 for no events
    (1, 0.0253, 5.5716),
    (10, 4.7954, 18.3904),
])
def test_garwood_interval_matches_the_published_values(count, lower, upper):
    low, high = poisson_interval(count)
    assert low == pytest.approx(lower, abs=1e-4)
    assert high == pytest.approx(upper, abs=1e-4)


def test_a_poisson_interval_scales_with_exposure_and_arrays_agree_with_single_values():
    low, high = poisson_interval(10, exposure=2.0)
    assert (low, high) == pytest.approx((4.7954 / 2, 18.3904 / 2), abs=1e-4)
    lows, highs = poisson_intervals(np.array([0, 1, 10]), np.array([1.0, 1.0, 2.0]))
    assert lows == pytest.approx([0.0, 0.0253, 4.7954 / 2], abs=1e-4)
    assert highs == pytest.approx([3.6889, 5.5716, 18.3904 / 2], abs=1e-4)


def test_garwood_intervals_cover_the_true_rate_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    exposure = 3.0
    for rate in (0.3, 2.0, 11.0):
        counts = rng.poisson(rate * exposure, size=4000)
        low, high = poisson_intervals(counts, np.full(len(counts), exposure))
        assert np.mean((low <= rate) & (rate <= high)) >= 0.95


@pytest.mark.parametrize("kwargs, message", [
    ({"count": -1}, "count"), ({"count": 2.5}, "count"), ({"count": 3, "exposure": 0}, "exposure"),
    ({"count": 3, "confidence": 95}, "confidence"),
])
def test_a_bad_argument_to_the_poisson_interval_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        poisson_interval(**kwargs)


def test_the_rate_ratio_p_value_is_the_exact_binomial_split_of_the_failures():
    result = rate_ratio_test(30, 10.0, 10, 20.0)
    assert result.ratio == pytest.approx(6.0)
    assert result.p_value == pytest.approx(stats.binomtest(30, 40, 1 / 3).pvalue)
    assert result.lower < 6.0 < result.upper


def test_the_rate_ratio_interval_maps_clopper_pearson_through_the_exposures():
    result = rate_ratio_test(12, 4.0, 8, 8.0)
    ci = stats.binomtest(12, 20, 4 / 12).proportion_ci(method="exact")
    assert result.lower == pytest.approx(ci.low / (1 - ci.low) * 2)
    assert result.upper == pytest.approx(ci.high / (1 - ci.high) * 2)


def test_the_rate_ratio_interval_covers_the_true_ratio_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    covered = []
    for _ in range(1500):
        a, b = rng.poisson(4.0 * 2.5), rng.poisson(1.0 * 5.0)
        if a + b == 0:
            continue
        r = rate_ratio_test(int(a), 2.5, int(b), 5.0)
        covered.append(r.lower <= 4.0 <= r.upper)
    assert np.mean(covered) >= 0.95


def test_equal_rates_give_a_ratio_near_one_and_a_large_p_value():
    result = rate_ratio_test(20, 10.0, 40, 20.0)
    assert result.ratio == pytest.approx(1.0)
    assert result.p_value == pytest.approx(1.0)


def test_no_failures_at_all_say_nothing_about_the_ratio():
    result = rate_ratio_test(0, 5.0, 0, 5.0)
    assert math.isnan(result.ratio)
    assert (result.lower, result.upper, result.p_value) == (0.0, math.inf, 1.0)


def test_failures_only_in_the_first_rate_give_an_unbounded_ratio_with_a_finite_lower_bound():
    result = rate_ratio_test(12, 5.0, 0, 5.0)
    assert math.isinf(result.ratio) and math.isinf(result.upper)
    assert 1.0 < result.lower < math.inf
    assert result.p_value < 0.001


@pytest.mark.parametrize("args, name", [
    ((-1, 1.0, 1, 1.0), "count_a"), ((1, 1.0, 1.5, 1.0), "count_b"), ((1, 0.0, 1, 1.0), "exposure_a"),
    ((1, 1.0, 1, math.inf), "exposure_b"),
])
def test_a_bad_argument_to_the_rate_ratio_test_is_named(args, name):
    with pytest.raises(ValueError, match=name):
        rate_ratio_test(*args)


def _pairwise_auc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def test_the_auc_is_the_share_of_positive_negative_pairs_ranked_right_with_ties_half():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=300).astype(float)
    labels = rng.random(300) < 0.2
    result = auc_mann_whitney(scores, labels)
    assert result.auc == pytest.approx(_pairwise_auc(scores, labels))
    assert result.p_value == pytest.approx(stats.mannwhitneyu(scores[labels], scores[~labels]).pvalue)


def test_ranked_scores_give_scipys_asymptotic_mann_whitney_for_any_labeling():
    rng = np.random.default_rng(2)
    scores = np.round(rng.normal(size=(4, 250)), 1)
    scores[0, :7] = np.nan
    ranked = RankedScores(scores)
    flat = scores.ravel()
    for _ in range(5):
        positives = np.sort(rng.choice(flat.size, size=60, replace=False))
        labels = np.zeros(flat.size, bool)
        labels[positives] = True
        keep = ~np.isnan(flat)
        expected = stats.mannwhitneyu(flat[keep & labels], flat[keep & ~labels], method="asymptotic")
        result = ranked.auc(positives)
        assert result.u == pytest.approx(expected.statistic)
        assert result.p_value == pytest.approx(expected.pvalue)
        assert result.auc == pytest.approx(_pairwise_auc(flat[keep], labels[keep]))


def test_many_labelings_at_once_give_the_same_aucs_as_one_at_a_time():
    rng = np.random.default_rng(4)
    ranked = RankedScores(rng.normal(size=1000))
    rows = [np.sort(rng.choice(1000, size=n, replace=False)) for n in (5, 40, 12)]
    assert ranked.aucs(PositiveSets.of(rows)) == pytest.approx([ranked.auc(r).auc for r in rows])
    assert np.isnan(ranked.aucs(PositiveSets.of([rows[0], np.zeros(0, int)]))[1])


@pytest.mark.parametrize("values", [
    [3.0, 1.0, 3.0, 2.0, 3.0, 1.0],          # whole numbers: counted
    [3.5, 1.0, 3.5, -2.0, 3.5, 1.0],         # fractions: sorted
    [0.0, 1e12, 0.0, 5.0],                   # whole numbers over a long range: sorted
])
def test_midranks_and_distinct_counts_agree_with_scipy_and_numpy(values):
    values = np.array(values)
    ranks, ties = midranks(values)
    assert ranks.tolist() == stats.rankdata(values).tolist()
    distinct, counts = np.unique(values, return_counts=True)
    assert sorted(ties.tolist()) == sorted(counts.tolist())
    got_distinct, got_counts = distinct_counts(values)
    assert (got_distinct.tolist(), got_counts.tolist()) == (distinct.tolist(), counts.tolist())


def test_an_auc_without_positives_or_negatives_is_unknown():
    result = auc_mann_whitney(np.arange(5.0), np.zeros(5, bool))
    assert math.isnan(result.auc) and math.isnan(result.p_value)
    assert math.isnan(RankedScores(np.arange(5.0)).auc(np.arange(5)).auc)


def test_holm_multiplies_the_k_th_smallest_p_value_by_m_minus_k_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_benjamini_hochberg_matches_scipy_and_the_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.005]
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    rng = np.random.default_rng(5)
    many = rng.random(50) ** 3
    assert benjamini_hochberg(many) == pytest.approx(stats.false_discovery_control(many))


def test_missing_p_values_stay_missing_and_do_not_count_in_the_family():
    adjusted = holm([0.01, np.nan, 0.04])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.04])
    assert np.isnan(benjamini_hochberg([np.nan])).all()


def test_a_p_value_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="p_values"):
        holm([0.2, 1.5])


def test_the_mean_interval_is_students_t_interval_and_skips_missing_values():
    samples = np.array([[1.0, 5.0], [2.0, np.nan], [4.0, 7.0], [9.0, 6.0]])
    mean, low, high, n = mean_interval(samples)
    expected = stats.t.interval(0.95, 3, loc=4.0, scale=stats.sem([1.0, 2.0, 4.0, 9.0]))
    assert (mean[0], low[0], high[0], n[0]) == pytest.approx((4.0, *expected, 4))
    assert n[1] == 3 and mean[1] == pytest.approx(6.0)


@pytest.mark.parametrize("values", [np.array([[2.0, 7.0, np.nan, 2.0], [1.0, 2.0, 9.0, 7.0]]),
                                    np.array([[2.5, 7.1, np.nan, 2.5], [1.0, 2.5, 9.9, 7.1]])])
def test_an_ordering_gives_the_ranks_and_distinct_values_of_any_subset_without_sorting_again(values):
    ordering = Ordering(values)
    mask = np.array([[True, True, True, False], [False, True, True, True]])
    kept = values[mask & ~np.isnan(values)]
    ranks, ties = ordering.midranks(mask)
    assert ranks.reshape(values.shape)[mask & ~np.isnan(values)].tolist() == stats.rankdata(kept).tolist()
    assert ranks.reshape(values.shape)[~mask].tolist() == [0.0, 0.0]
    distinct, counts = ordering.distinct_counts(mask)
    expected = np.unique(kept, return_counts=True)
    assert (distinct.tolist(), counts.tolist()) == (expected[0].tolist(), expected[1].tolist())
    assert sorted(ties.tolist()) == sorted(expected[1].tolist())
