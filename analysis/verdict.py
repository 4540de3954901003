"""The verdict and the finding: what the evidence allows one to say, in one plain sentence.

The verdict rests on the rate ratios (top against bottom load bucket) of every signal at every lag looked at,
tested against circular shifts of the failures and adjusted over all of them (analysis.ratio_test), and it
refuses to speak on thin data:

- `not_enough_failures`: fewer than `min_failures` failures fell on host-steps with load data;
- `not_enough_exposure`: no signal has at least `min_bucket_host_days` of exposure in both its bottom and top
  bucket (too few hosts or days, or a signal that never varies);
- `effect`: some signal's adjusted p-value is below alpha / 2 (half the analysis' error budget; the other half
  goes to the AUC ranking); the strongest one is reported, with the lag that carries it;
- `no_significant_effect`: otherwise. This is not proof of no effect: the sentence gives the strongest signal's
  interval, which says how large an effect the data can still not rule out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.signals import format_value, kinds_label, kinds_nouns
from tsdb.times import format_duration

NOT_ENOUGH_FAILURES = "not_enough_failures"
NOT_ENOUGH_EXPOSURE = "not_enough_exposure"
NO_SIGNIFICANT_EFFECT = "no_significant_effect"
EFFECT = "effect"


@dataclass(frozen=True)
class Verdict:
    """What may be claimed: status (one of the four above), the signal concerned and why, in a few words."""

    status: str
    reason: str
    #: the signal with the effect, or the strongest candidate; None when nothing could be tested
    signal: str | None = None

    @property
    def is_effect(self) -> bool:
        """Say whether the data show an effect."""
        return self.status == EFFECT


@dataclass(frozen=True)
class Evidence:
    """The numbers a finding sentence needs, for one signal's top/bottom comparison and the whole analysis."""

    kinds: tuple[str, ...]
    failures: int
    failing_hosts: int
    range_seconds: float
    step_seconds: int
    lag_steps: int
    tested_signals: int
    signal: str | None = None
    signal_label: str = ""
    ratio: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    top_from: float = math.nan
    bottom_below: float = math.nan
    #: every lag looked at (the adjustment covers them all)
    lags: tuple[int, ...] = ()
    #: where the ratios of the failures shifted in time centre (analysis.ratio_test), the level the adjusted
    #: p-value is held to, and the interval's confidence
    null_ratio: float = math.nan
    alpha: float = 0.025
    confidence: float = 0.95


def lags_words(lags: tuple[int, ...]) -> str:
    """Return the lags looked at: "lag 1", "lags 0 and 1"."""
    if len(lags) == 1:
        return f"lag {lags[0]}"
    return "lags " + ", ".join(map(str, lags[:-1])) + f" and {lags[-1]}"


def format_p(p: float) -> str:
    """Return "p < 0.001" or "p = 0.012"."""
    if math.isnan(p):
        return "p n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def format_ratio(value: float) -> str:
    """Return a rate ratio with two significant figures ("6.2", "12", "0.41")."""
    if math.isinf(value):
        return "unbounded"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}" if value < 1 else f"{value:.1f}"


def _upper_first(text: str) -> str:
    """Return text starting with a capital, except a name that is always lower case (libvirtd)."""
    return text if text.startswith("libvirtd") else text[:1].upper() + text[1:]


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _tally(e: Evidence) -> str:
    """Return "41 restarts on 37 hosts over 14 days"."""
    one, many = kinds_nouns(e.kinds)
    return (f"{_count(e.failures, one, many)} on {_count(e.failing_hosts, 'host', 'hosts')} over "
            f"{format_duration(e.range_seconds)}")


def _when(e: Evidence) -> tuple[str, str]:
    """Return how the sentence places the failures relative to the load, for the top and the bottom bucket."""
    top, bottom = format_value(e.signal or "", e.top_from), format_value(e.signal or "", e.bottom_below)
    step = format_duration(e.step_seconds)
    if e.lag_steps == 0:
        return (f"in {step.replace(' ', '-')} steps in which {e.signal_label} averaged {top} or more",
                f"in steps in which it averaged below {bottom}")
    span = "minute" if e.step_seconds == 60 else step
    later = "" if e.lag_steps == 1 else f" starting {format_duration((e.lag_steps - 1) * e.step_seconds)}"
    return (f"in the {span}{later} after {e.signal_label} averaged {top} or more",
            f"after it averaged below {bottom}")


def disagreement(verdict: Verdict, e: Evidence) -> str:
    """Return a sentence saying why the signal's interval and the verdict seem to disagree, or "" when they agree.

    They agree when an effect comes with an interval that excludes 1 (always, by construction) and when no effect
    comes with an interval that includes 1.
    """
    if verdict.status != NO_SIGNIFICANT_EFFECT or e.signal is None or math.isnan(e.lower):
        return ""
    level = f"{e.confidence * 100:g}%"
    if e.lower <= 1 <= e.upper:
        if e.p_adjusted < e.alpha:
            return (f"Shifted in time on their own hosts, the {kinds_label(e.kinds)} line up with "
                    f"{e.signal_label} less often than they do, but the {level} interval of the ratio still holds "
                    f"1, so no effect is claimed.")
        return ""
    looked = lags_words(e.lags or (e.lag_steps,))
    if e.p_value <= 1 - e.confidence:
        return (f"Its {level} interval excludes 1, yet that is not significant: {e.tested_signals} signals were "
                f"looked at, at {looked}, and by chance alone one interval in {round(1 / (1 - e.confidence))} "
                f"excludes 1; the adjusted {format_p(e.p_adjusted)} is not below {e.alpha:g}.")
    centre = format_ratio(e.null_ratio) if math.isfinite(e.null_ratio) else "n/a"
    return (f"Its {level} interval excludes 1, yet the failures shifted in time on their own hosts give a ratio of "
            f"about {centre} too: the hosts with high {e.signal_label} also fail more often at other times, "
            f"so this ratio cannot be told apart from a difference between hosts ({format_p(e.p_adjusted)}).")


def finding(verdict: Verdict, e: Evidence) -> str:
    """Return one sentence a person can act on, never stronger than the verdict."""
    what = kinds_label(e.kinds)
    if verdict.status == NOT_ENOUGH_FAILURES:
        return (f"Too few {what} to tell whether load matters: {_tally(e)} on host-steps with load data "
                f"({verdict.reason}).")
    if verdict.status == NOT_ENOUGH_EXPOSURE:
        return f"Too little load data to tell whether load matters for {what}: {verdict.reason} ({_tally(e)})."
    top, bottom = _when(e)
    looked = lags_words(e.lags or (e.lag_steps,))
    family = (f"adjusted over {_count(e.tested_signals, 'signal', 'signals')} at {looked} by circular shifts of "
              f"the failures")
    if verdict.status == EFFECT:
        more = "more" if e.ratio > 1 else "less"
        if math.isinf(e.ratio):
            size = f"at least {format_ratio(e.lower)}x (95% CI lower bound; none at all {bottom})"
            return (f"{_upper_first(what)} were {size} more frequent {top} "
                    f"({format_p(e.p_adjusted)}, {family}; {_tally(e)}).")
        factor = e.ratio if e.ratio > 1 else 1 / e.ratio
        low, high = (e.lower, e.upper) if e.ratio > 1 else (1 / e.upper, 1 / e.lower)
        return (f"{_upper_first(what)} were {format_ratio(factor)}x (95% CI {format_ratio(low)} to "
                f"{format_ratio(high)}) {more} frequent {top} than {bottom} "
                f"({format_p(e.p_adjusted)}, {family}; {_tally(e)}).")
    if e.signal is None:
        return f"No evidence that load matters for {what} ({_tally(e)})."
    top_from, bottom_below = format_value(e.signal, e.top_from), format_value(e.signal, e.bottom_below)
    why = disagreement(verdict, e)
    return (f"No significant evidence that {what} depend on load ({_tally(e)}): the strongest signal, "
            f"{e.signal_label}, gave a rate ratio of {format_ratio(e.ratio)} (95% CI {format_ratio(e.lower)} to "
            f"{format_ratio(e.upper)}) between its highest loads ({top_from} or more) and its lowest (below "
            f"{bottom_below}) ({format_p(e.p_adjusted)}, {family}).") + (f" {why}" if why else "")
