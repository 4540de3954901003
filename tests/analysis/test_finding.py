"""analysis.verdict: the finding sentence for each verdict, never stronger than the evidence."""

import math

import pytest

from analysis.signals import format_value, kinds_label
from analysis.verdict import (EFFECT, NO_SIGNIFICANT_EFFECT, NOT_ENOUGH_EXPOSURE, NOT_ENOUGH_FAILURES, Evidence,
                              Verdict, finding, format_p, format_ratio)

DAYS_14 = 14 * 86400


def _evidence(**kw):
    base = dict(kinds=("restart",), failures=41, failing_hosts=37, range_seconds=DAYS_14, step_seconds=300,
                lag_steps=1, tested_signals=9, signal="libvirtd.job_queue_depth", signal_label="the job queue depth",
                ratio=6.2, lower=3.1, upper=12.4, p_value=0.00001, p_adjusted=0.0001, top_from=3.0, bottom_below=1.0)
    base.update(kw)
    return Evidence(**base)


def test_an_effect_reads_as_ratio_interval_threshold_p_value_and_counts():
    text = finding(Verdict(EFFECT, "", "libvirtd.job_queue_depth"), _evidence())
    assert text == ("libvirtd restarts were 6.2x (95% CI 3.1 to 12) more frequent in the 5 min after the job "
                    "queue depth averaged 3 or more than after it averaged below 1 (p < 0.001, adjusted over 9 signals "
                    "at lag 1 by circular shifts of the failures; 41 restarts on 37 hosts over 14 d).")


def test_the_sentence_names_every_lag_the_adjustment_covered():
    text = finding(Verdict(EFFECT, "", "libvirtd.job_queue_depth"), _evidence(lag_steps=0, lags=(0, 1)))
    assert "adjusted over 9 signals at lags 0 and 1 by circular shifts" in text


def test_without_a_lag_the_sentence_says_the_failures_own_step():
    text = finding(Verdict(EFFECT, "", "libvirtd.job_queue_depth"), _evidence(lag_steps=0))
    assert "in 5-min steps in which the job queue depth averaged 3 or more than in steps in which it averaged " \
           "below 1" in text


def test_a_protective_signal_reads_as_less_frequent_with_the_inverted_interval():
    text = finding(Verdict(EFFECT, "", "libvirtd.job_queue_depth"), _evidence(ratio=0.5, lower=0.25, upper=0.8))
    assert "were 2.0x (95% CI 1.2 to 4.0) less frequent" in text


def test_failures_only_at_high_load_give_a_lower_bound_not_an_infinite_ratio():
    text = finding(Verdict(EFFECT, "", "libvirtd.job_queue_depth"), _evidence(ratio=math.inf, upper=math.inf))
    assert "at least 3.1x" in text and "inf" not in text


def test_no_significant_effect_says_so_and_shows_what_the_data_cannot_rule_out():
    text = finding(Verdict(NO_SIGNIFICANT_EFFECT, "", "libvirtd.job_queue_depth"),
                   _evidence(ratio=1.3, lower=0.7, upper=2.4, p_adjusted=0.41))
    assert text.startswith("No significant evidence that libvirtd restarts depend on load (41 restarts on 37 hosts")
    assert "1.3 (95% CI 0.7 to 2.4)" in text and "p = 0.41" in text
    assert "more frequent" not in text


def test_an_interval_that_excludes_1_beside_no_effect_says_why_they_differ():
    many_looks = finding(Verdict(NO_SIGNIFICANT_EFFECT, "", "libvirtd.job_queue_depth"),
                         _evidence(ratio=1.8, lower=1.3, upper=2.6, p_value=0.02, p_adjusted=0.2, lags=(0, 1)))
    assert "Its 95% interval excludes 1, yet that is not significant: 9 signals were looked at, at lags 0 and 1" \
        in many_looks
    hosts = finding(Verdict(NO_SIGNIFICANT_EFFECT, "", "libvirtd.job_queue_depth"),
                    _evidence(ratio=1.8, lower=1.3, upper=2.6, p_value=0.4, p_adjusted=0.9, null_ratio=1.7))
    assert "shifted in time on their own hosts give a ratio of about 1.7 too" in hosts
    agreeing = finding(Verdict(NO_SIGNIFICANT_EFFECT, "", "libvirtd.job_queue_depth"),
                       _evidence(ratio=1.3, lower=0.7, upper=2.4, p_value=0.3, p_adjusted=0.41))
    assert agreeing.endswith("by circular shifts of the failures).")


def test_too_few_failures_says_how_many_there_were_and_how_many_are_needed():
    text = finding(Verdict(NOT_ENOUGH_FAILURES, "at least 10 needed"),
                   _evidence(failures=1, failing_hosts=1, signal=None, range_seconds=3 * 3600))
    assert text == ("Too few libvirtd restarts to tell whether load matters: 1 restart on 1 host over 3 h on "
                    "host-steps with load data (at least 10 needed).")


def test_too_little_exposure_says_so_and_claims_nothing():
    text = finding(Verdict(NOT_ENOUGH_EXPOSURE, "no signal has 1 host-days of exposure"), _evidence(signal=None))
    assert text.startswith("Too little load data to tell whether load matters for libvirtd restarts")


def test_grouped_kinds_are_named_together():
    assert kinds_label(("restart", "segfault")) == "failures (restart or segfault)"
    assert kinds_label(("domain_failed",)) == "guest failures"
    assert kinds_label(("log_lock_timeout",)) == "'lock_timeout' log errors"
    text = finding(Verdict(EFFECT, "", "libvirtd.job_queue_depth"), _evidence(kinds=("restart", "segfault")))
    assert text.startswith("Failures (restart or segfault) were") and "41 failures on 37 hosts" in text


@pytest.mark.parametrize("signal, value, text", [
    ("libvirtd.rss_bytes", 3 * 2**30, "3 GiB"), ("libvirtd.rss_bytes", 1.5 * 2**20, "1.5 MiB"),
    ("libvirtd.probe_latency_ms", 12.345, "12.3 ms"), ("host.libvirt_calls_per_second", 40.0, "40/s"),
    ("libvirtd.job_queue_depth", 3.0, "3"), ("host.load1", 0.0, "0"), ("host.load1", 123456.0, "123,456"),
])
def test_values_are_written_with_their_units(signal, value, text):
    assert format_value(signal, value) == text


def test_p_values_and_ratios_are_rounded_for_reading():
    assert (format_p(0.0004), format_p(0.012), format_p(0.41)) == ("p < 0.001", "p = 0.012", "p = 0.41")
    assert (format_ratio(6.24), format_ratio(12.4), format_ratio(0.413)) == ("6.2", "12", "0.41")
