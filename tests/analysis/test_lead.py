"""analysis.lead: AUC of each signal at each lead for "a failure within the next N", calibrated p-values."""

import numpy as np
import pytest

from analysis.lead import lead_steps_of, positive_cells, rank_leads
from analysis.stats import benjamini_hochberg
from analysis_grids import ar1_rows


def _brute_positive_cells(hosts, steps, host_index, step_index, start_offset, horizon):
    labels = np.zeros((hosts, steps), bool)
    for h in range(hosts):
        for s in range(steps):
            window = range(s + start_offset, s + start_offset + horizon)
            labels[h, s] = any(hh == h and ff in window for hh, ff in zip(host_index, step_index))
    return np.flatnonzero(labels.ravel())


@pytest.mark.parametrize("start_offset, horizon", [(0, 1), (1, 3), (4, 6)])
def test_positive_cells_are_the_steps_whose_window_holds_a_failure_each_once(start_offset, horizon):
    host_index = np.array([0, 0, 0, 1, 2, 2])
    step_index = np.array([3, 5, 19, 0, 10, 10])  # near failures overlap; the last host fails twice in a step
    cells = positive_cells(host_index, step_index, 20, start_offset, horizon)
    assert cells.tolist() == _brute_positive_cells(3, 20, host_index, step_index, start_offset, horizon).tolist()


def test_lead_times_become_distinct_whole_steps():
    assert lead_steps_of((0, 300, 320, 900), 300) == [0, 1, 3]
    with pytest.raises(ValueError, match="lead_seconds"):
        lead_steps_of((0, -300), 300)


def _planted_lead(seed, lead_steps=3):
    """A latent load; failures follow its peaks `lead_steps` steps later; one signal carries it, one does not."""
    rng = np.random.default_rng(seed)
    latent = ar1_rows(rng, 20, 3000, tau_steps=2.0)
    rate = 0.002 * np.exp(1.5 * latent)
    failures = np.zeros_like(latent, dtype=int)
    failures[:, lead_steps:] = rng.poisson(rate[:, :-lead_steps])
    h, s = np.nonzero(failures)
    return {"libvirtd.job_queue_depth": latent, "libvirtd.rss_bytes": rng.normal(size=latent.shape)}, h, s


def test_the_signal_that_precedes_failures_ranks_first_at_the_lead_where_it_tells_most():
    values, h, s = _planted_lead(1)
    ranking = rank_leads(values, h, s, step_seconds=300, lead_seconds=(0, 600, 1500), horizon_seconds=300,
                         lag_steps=1, shifts=100)
    leaders = ranking.leaders
    assert leaders["signal"].tolist() == ["libvirtd.job_queue_depth", "libvirtd.rss_bytes"]
    assert leaders.loc[0, "best_lead_seconds"] == 600  # failure at s + 3 = the window [s + 1 + 2, + 1)
    assert leaders.loc[0, "auc"] > 0.6 and leaders.loc[0, "significant"]
    assert not leaders.loc[1, "significant"]
    assert set(ranking.by_lead["lead_seconds"]) == {0, 600, 1500}


def test_shift_calibrated_p_values_hold_their_level_where_mann_whitneys_do_not():
    """Slow load and a failure window of six steps: neighbouring samples are not independent."""
    calibrated, independent = 0, 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        latent = ar1_rows(rng, 10, 2000, tau_steps=48.0)
        failures = rng.poisson(np.full(latent.shape, 0.004))
        h, s = np.nonzero(failures)
        ranking = rank_leads({"host.load1": latent}, h, s, 300, lead_seconds=(0,), horizon_seconds=1800,
                             shifts=100, seed=seed)
        calibrated += bool(ranking.by_lead["p_value"].iloc[0] < 0.05)
        independent += bool(ranking.by_lead["p_independent"].iloc[0] < 0.05)
    assert calibrated <= 2  # 5% of 20 is 1
    assert independent >= 5  # the naive test claims an effect on a quarter or more of pure-noise fleets


def test_p_values_are_adjusted_across_signals_and_leads_by_benjamini_hochberg():
    values, h, s = _planted_lead(2)
    by_lead = rank_leads(values, h, s, 300, lead_seconds=(0, 600), horizon_seconds=300, shifts=50).by_lead
    assert by_lead["p_adjusted"].tolist() == pytest.approx(benjamini_hochberg(by_lead["p_value"]).tolist())


def test_no_failures_give_unknown_aucs_and_nothing_significant():
    ranking = rank_leads({"host.load1": np.ones((2, 100))}, np.zeros(0, int), np.zeros(0, int), 300, shifts=20)
    assert ranking.by_lead["auc"].isna().all()
    assert not ranking.by_lead["significant"].any()
    assert ranking.leaders["signal"].tolist() == ["host.load1"]


@pytest.mark.parametrize("kwargs, name", [({"horizon_seconds": 0}, "horizon_seconds"), ({"shifts": 5}, "shifts")])
def test_a_bad_ranking_setting_is_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        rank_leads({"host.load1": np.ones((1, 10))}, np.zeros(0, int), np.zeros(0, int), 300, **kwargs)
