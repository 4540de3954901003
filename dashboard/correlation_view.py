"""The correlation page's pieces, no callbacks, one module each; this module names them together.

- dashboard.correlation_state: the page's state in the URL (kinds, signal, hosts, lags);
- dashboard.correlation_range: the default range, the step rule, whole steps, the notes on step and lag;
- dashboard.correlation_cache: the analyses kept per worker, keyed by the store's URL;
- dashboard.correlation_render: the result drawn (verdict, finding, figures, ranking).

    state = page_state(params)                       # ParamError naming the bad parameter
    result = correlation_result(store, state.hosts, start_ns, end_ns, state.kinds, state.signal, state.analysed_lags)
    finding, body = render(result, state)
"""

from __future__ import annotations

from dashboard.correlation_cache import (INPUTS_CACHE_MAX, RESULTS_CACHE_MAX, _inputs_cache,  # noqa: F401
                                         _results_cache, analysis_signals, cache_counts, clear_cache,
                                         correlation_result)
from dashboard.correlation_range import (DEFAULT_RANGE_SECONDS, LONGER_RANGES, STEP_RULES,  # noqa: F401
                                         analysis_range, data_start_ns, default_range, lag_note,
                                         longer_range_hint, range_note, step_note, step_seconds_for)
from dashboard.correlation_render import (BASELINE_COLOUR, BASELINE_FILL, BUCKET_COLOUR, COUNT_UNITS,  # noqa: F401
                                          FAILURE_COLOUR, FAILURE_FILL, GRAPH_CONFIG, LOG_TICKS, VERDICT_BORDER,
                                          VERDICT_STYLE, _finite, _layout, axis_unit, bucket_labels,
                                          clear_without_effect, failure_nouns, lag_words, ranked_signals,
                                          ranking_columns, ranking_rows, ranking_table, rates_figure, ratio_row,
                                          ratio_words, ratios_figure, render, selected_summary,
                                          short_of_adjustment, triggered_figure, verdict_box)
from dashboard.correlation_state import (ANALYSED_LAGS, BOTH_LAGS, DAEMON_KINDS, DEFAULT_KINDS,  # noqa: F401
                                         DEFAULT_LAG, DEFAULT_SIGNAL, GUEST_KINDS, KIND_GROUPS, KINDS, LAG_CHOICES,
                                         LAGS, LOG_KIND, NOT_LOAD, SIGNAL_MEASUREMENTS, PageState, check_kind,
                                         kind_options, page_state, signal_choices, signal_label, signal_options)
