"""analysis: does libvirtd fail when it is loaded, and by which load? Statistics on the store's data.

    from analysis import analyze, load_inputs
    inputs = load_inputs(store, scope=None, start=start, end=end, kinds="restart", step_seconds=300)
    result = analyze(inputs)          # lags 0 and 1: rates per load bucket, rate ratios, triggered averages, AUC
    result.verdict.status, result.finding, result.lag_steps

Modules: stats (pure functions on arrays), signals (names, defaults, labels), exposure (the hosts x steps grid),
inputs (reading through tsdb), buckets, triggered, lead (the three analyses), shifts (the circular-shift null
model), ratio_test (the verdict's test over signals and lags, and its intervals), verdict (what may be claimed and
the sentence), correlation (`analyze`). Pure pandas/numpy/scipy: no Dash.
"""

from analysis.correlation import CorrelationResult, Settings, analyze  # noqa: F401
from analysis.exposure import Grid, Inputs, build_grid  # noqa: F401
from analysis.inputs import load_inputs  # noqa: F401
from analysis.signals import DEFAULT_SIGNALS, Signal, parse_signal  # noqa: F401
from analysis.verdict import (EFFECT, NO_SIGNIFICANT_EFFECT, NOT_ENOUGH_EXPOSURE, NOT_ENOUGH_FAILURES,  # noqa: F401
                              Verdict)
