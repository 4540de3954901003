"""The correlation result drawn: the verdict and finding, the rates by load, the load around failures, every
signal's ratio and the ranking.

    finding, body = render(result, state)

Colours carry meaning and never alone: the failures' curve is red with ✖ markers and the baseline grey and
dashed; the verdict is a word with a symbol; the top bucket of an effect is red and hatched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dash import dcc, html

from dashboard import views
from tsdb.times import format_duration
from dashboard.correlation_state import PageState, signal_label

if TYPE_CHECKING:
    from analysis import CorrelationResult

#: verdict status -> (symbol, words, css class of a chip); the words are always shown
VERDICT_STYLE = {
    "effect": ("▲", "load matters", "status-hung"),
    "no_significant_effect": ("●", "no significant effect", "status-restarting"),
    "not_enough_failures": ("?", "not enough failures", "status-nodata"),
    "not_enough_exposure": ("?", "not enough load data", "status-nodata"),
    "no_variation": ("–", "never varies", "status-nodata"),
    "testable": ("●", "tested", "status-nodata"),
}
VERDICT_BORDER = {"effect": "#9a4d00", "no_significant_effect": "#1456a0"}
FAILURE_COLOUR = "#c62828"
FAILURE_FILL = "rgba(198, 40, 40, 0.15)"
BASELINE_COLOUR = "#607080"
BASELINE_FILL = "rgba(96, 112, 128, 0.15)"
BUCKET_COLOUR = "#90a4ae"
GRAPH_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
#: the ticks of a rate ratio axis (log scale)
LOG_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
#: signal -> what its values count, for an axis title (bytes, ms, % and /s are read from the name)
COUNT_UNITS = {"host.load1": "runnable tasks", "host.load5": "runnable tasks", "host.load15": "runnable tasks",
               "host.domains_running": "guests", "host.domains_defined": "guests",
               "libvirtd.workers_busy": "workers", "libvirtd.workers_current": "workers",
               "libvirtd.workers_free": "workers", "libvirtd.workers_priority": "workers",
               "libvirtd.job_queue_depth": "queued calls", "libvirtd.clients": "clients",
               "libvirtd.open_fds": "file descriptors", "libvirtd.threads": "threads"}


def axis_unit(signal: str) -> tuple[float, str]:
    """Return (divisor, unit) to show a signal's values with: bytes as MiB, the rest as stored."""
    if signal.endswith("_bytes"):
        return float(2**20), "MiB"
    for suffix, unit in (("_ms", "ms"), ("_percent", "%"), ("_per_second", "per second"), ("_seconds", "s")):
        if signal.endswith(suffix):
            return 1.0, unit
    return 1.0, COUNT_UNITS.get(signal, "value")


def failure_nouns(kinds: tuple[str, ...]) -> tuple[str, str]:
    """Return how one and several failures of the kinds are called ("restart", "restarts")."""
    from analysis.signals import kinds_nouns

    return kinds_nouns(kinds)


def _finite(values) -> list:
    """Return numbers as a JSON-safe list: NaN and infinities become None (a gap)."""
    out = []
    for value in values:
        value = float(value)
        out.append(round(value, 6) if math.isfinite(value) else None)
    return out


def _layout(height: int, **more) -> dict:
    """Return the dashboard's dict layout (dashboard.figures) with a wider margin and hover on the nearest point."""
    from dashboard.figures import dict_layout

    return dict_layout(height, **{"margin": {"l": 70, "r": 20, "t": 40, "b": 60}, "hovermode": "closest", **more})


def lag_words(lag_steps: int, step_seconds: int) -> str:
    """Return where the load is taken, relative to the failure's step."""
    if lag_steps == 0:
        return "the failure's own step"
    if lag_steps == 1:
        return "the step before the failure"
    return f"{lag_steps} steps ({format_duration(lag_steps * step_seconds)}) before the failure's step"


def bucket_labels(signal: str, buckets) -> list[str]:
    """Return each load bucket's range in words: "below 1", "1 to 3", "3 or more" (with the signal's unit)."""
    from analysis.signals import format_value

    n = len(buckets)
    labels = []
    for i, row in enumerate(buckets.itertuples(index=False)):
        low, high = format_value(signal, row.lower), format_value(signal, row.upper)
        if n == 1:
            labels.append(f"{low} to {high}")
        elif i == 0:
            labels.append(f"below {high}")
        elif i == n - 1:
            labels.append(f"{low} or more")
        else:
            labels.append(f"{low} to {high}")
    return labels


def ratio_row(result: CorrelationResult, signal: str) -> Mapping:
    """Return the ratios table's row of a signal (RATIO_COLUMNS)."""
    table = result.ratios.set_index("signal")
    return table.loc[signal]


def ratio_words(row: Mapping) -> str:
    """Return a signal's top/bottom rate ratio with its interval: "4.4x (95% CI 3.4 to 5.9)", or why there is none."""
    from analysis.verdict import format_ratio

    if not math.isfinite(row["lower"]) or math.isnan(row["ratio"]):
        return "no ratio (fewer than two load buckets)" if row["status"] == "no_variation" else "no ratio"
    if math.isinf(row["ratio"]):
        return f"at least {format_ratio(row['lower'])}x (none in the bottom bucket)"
    return f"{format_ratio(row['ratio'])}x (95% CI {format_ratio(row['lower'])} to {format_ratio(row['upper'])})"


def rates_figure(result: CorrelationResult, signal: str) -> dict:
    """Return the failure rate per load bucket of `signal` with its Garwood 95% intervals and the overall rate."""
    from analysis.verdict import format_p

    rates = result.rates[signal]
    buckets = rates.buckets
    one, many = failure_nouns(result.kinds)
    row = ratio_row(result, signal)
    effect = row["status"] == "effect"
    labels = bucket_labels(signal, buckets)
    values = buckets["rate_per_host_day"].to_numpy()
    colours = [BUCKET_COLOUR] * len(buckets)
    patterns = [""] * len(buckets)
    if effect and len(buckets) >= 2:
        edge = -1 if row["ratio"] > 1 else 0  # the bucket where failures are more frequent
        colours[edge], patterns[edge] = FAILURE_COLOUR, "/"
    ticks = [f"{label}<br><sub>{int(f)} {one if f == 1 else many} in {d:,.1f} host-days</sub>"
             for label, f, d in zip(labels, buckets["failures"], buckets["exposure_host_days"])]
    upper = buckets["rate_upper"].to_numpy() - values
    lower = values - buckets["rate_lower"].to_numpy()
    bar = {"type": "bar", "x": ticks, "y": _finite(values), "name": f"{many} per host-day",
           "marker": {"color": colours, "pattern": {"shape": patterns, "fgcolor": "#ffffff"},
                      "line": {"color": "#37474f", "width": 1}},
           "error_y": {"type": "data", "symmetric": False, "array": _finite(upper), "arrayminus": _finite(lower),
                       "color": "#263238", "thickness": 1.5, "width": 8},
           "hovertemplate": "%{x}<br>%{y:.3g} " + many + " per host-day<extra></extra>"}
    exposure = float(buckets["exposure_host_days"].sum())
    overall = rates.failures / exposure if exposure > 0 else math.nan
    shapes, notes = [], []
    if math.isfinite(overall):
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": overall,
                       "y1": overall, "line": {"dash": "dash", "color": "#555", "width": 1}})
        notes.append({"xref": "paper", "x": 0, "xanchor": "left", "yref": "y", "y": overall, "yanchor": "bottom",
                      "text": f"all steps: {overall:.3g} per host-day", "showarrow": False,
                      "bgcolor": "rgba(255, 255, 255, 0.85)", "font": {"color": "#444", "size": 11}})
    symbol, words, _css = VERDICT_STYLE.get(row["status"], ("●", row["status"], ""))
    p = f", adjusted {format_p(row['p_adjusted'])}" if math.isfinite(row["p_adjusted"]) else ""
    title = f"highest / lowest bucket: {ratio_words(row)}<br>{symbol} {words}{p}"
    _scale, unit = axis_unit(signal)
    return {"data": [bar], "layout": _layout(
        360, shapes=shapes, annotations=notes, showlegend=False, bargap=0.25,
        margin={"l": 70, "r": 20, "t": 60, "b": 70},
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 13}},
        xaxis={"title": {"text": f"{signal_label(signal)} ({unit}), mean over "
                                 f"{lag_words(result.lag_steps, result.step_seconds)}"}, "type": "category"},
        yaxis={"title": {"text": f"{many} per host-day"}, "rangemode": "tozero"})}


def triggered_figure(result: CorrelationResult, signal: str) -> dict:
    """Return the signal around each failure against the same at random host-steps, both with 95% bands."""
    frame = result.triggered[signal].frame
    scale, unit = axis_unit(signal)
    minutes = _finite(frame["offset_seconds"] / 60)
    one, many = failure_nouns(result.kinds)
    n = result.triggered[signal].failures

    def band(prefix: str, fill: str, name: str) -> dict:
        xs = minutes + minutes[::-1]
        ys = _finite(frame[f"{prefix}_upper"] / scale) + _finite(frame[f"{prefix}_lower"] / scale)[::-1]
        return {"type": "scatter", "x": xs, "y": ys, "fill": "toself", "fillcolor": fill, "mode": "lines",
                "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False, "name": name}

    data = [
        band("baseline", BASELINE_FILL, "baseline 95% band"),
        band("failure", FAILURE_FILL, "failure 95% band"),
        {"type": "scatter", "x": minutes, "y": _finite(frame["baseline_mean"] / scale), "mode": "lines",
         "name": "at random host-steps (baseline)", "line": {"color": BASELINE_COLOUR, "dash": "dash", "width": 2},
         "hovertemplate": "%{x:g} min: %{y:.3g} " + unit + " (baseline)<extra></extra>"},
        {"type": "scatter", "x": minutes, "y": _finite(frame["failure_mean"] / scale), "mode": "lines+markers",
         "name": f"around the {n} {one if n == 1 else many}", "line": {"color": FAILURE_COLOUR, "width": 2.5},
         "marker": {"symbol": "x", "size": 7, "color": FAILURE_COLOUR},
         "hovertemplate": "%{x:g} min: %{y:.3g} " + unit + " (around failures)<extra></extra>"},
    ]
    shapes = [{"type": "line", "xref": "x", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1,
               "line": {"color": FAILURE_COLOUR, "width": 1.5}}]
    notes = [{"xref": "x", "x": 0, "xanchor": "left", "yref": "paper", "y": 0.02, "yanchor": "bottom",
              "text": f" ✖ the {one}'s step", "showarrow": False, "font": {"color": FAILURE_COLOUR, "size": 11}}]
    lag = result.lag_steps
    if lag:
        at = -lag * result.step_seconds / 60
        shapes.append({"type": "line", "xref": "x", "x0": at, "x1": at, "yref": "paper", "y0": 0, "y1": 1,
                       "line": {"color": "#37474f", "width": 1, "dash": "dot"}})
        notes.append({"xref": "x", "x": at, "xanchor": "right", "yref": "paper", "y": 0.02, "yanchor": "bottom",
                      "text": "load the rates use ", "showarrow": False, "font": {"color": "#37474f", "size": 11}})
    return {"data": data, "layout": _layout(
        360, shapes=shapes, annotations=notes, hovermode="x",
        xaxis={"title": {"text": f"minutes from the {one}'s step ({format_duration(result.step_seconds)} steps; "
                                 f"0 = the step it happened in)"}, "zeroline": False},
        yaxis={"title": {"text": f"{signal_label(signal)} ({unit})"}})}


def ratios_figure(result: CorrelationResult, signal: str) -> dict:
    """Return every signal's top/bottom rate ratio with its 95% interval on a log axis, strongest evidence first
    (the verdict's order: adjusted p-value, then the size of the ratio)."""
    table = result.ratios.set_index("signal")
    strength = table["ratio"].where(table["ratio"] > 0).map(lambda r: abs(math.log(r)) if math.isfinite(r) else 1e9)
    order = (table.assign(p=table["p_adjusted"].fillna(2.0), strength=strength.fillna(-1.0))
             .sort_values(["p", "strength"], ascending=[True, False], kind="mergesort").index.tolist())
    shown = [s for s in order if math.isfinite(table.loc[s, "ratio"]) and table.loc[s, "ratio"] > 0]
    labels = [("▸ " if s == signal else "") + signal_label(s) for s in shown]
    ratio = [float(table.loc[s, "ratio"]) for s in shown]
    low = [float(table.loc[s, "lower"]) for s in shown]
    high = [float(table.loc[s, "upper"]) for s in shown]
    effect = [table.loc[s, "status"] == "effect" for s in shown]
    capped_high = [h if math.isfinite(h) else r * 100 for h, r in zip(high, ratio)]
    trace = {"type": "scatter", "y": labels, "x": _finite(ratio), "mode": "markers",
             "marker": {"symbol": ["diamond" if e else "circle-open" for e in effect], "size": 11,
                        "color": [FAILURE_COLOUR if e else BASELINE_COLOUR for e in effect],
                        "line": {"width": 2}},
             "error_x": {"type": "data", "symmetric": False,
                         "array": _finite([h - r for h, r in zip(capped_high, ratio)]),
                         "arrayminus": _finite([r - lo for r, lo in zip(ratio, low)]),
                         "color": "#37474f", "thickness": 1.5, "width": 5},
             "customdata": [ratio_words(table.loc[s]) + (" ▲ effect" if e else "") for s, e in zip(shown, effect)],
             "hovertemplate": "%{y}: %{customdata}<extra></extra>", "name": "rate ratio"}
    line = {"type": "line", "xref": "x", "x0": 1, "x1": 1, "yref": "paper", "y0": 0, "y1": 1,
            "line": {"color": "#555", "dash": "dash", "width": 1}}
    note = {"xref": "x", "x": 0, "xanchor": "center", "yref": "paper", "y": 1, "yanchor": "bottom",
            "text": "1x: no difference", "showarrow": False, "font": {"color": "#555", "size": 11}}
    return {"data": [trace], "layout": _layout(
        max(200, 34 * len(shown) + 110), shapes=[line], annotations=[note], showlegend=False,
        margin={"l": 230, "r": 20, "t": 30, "b": 50},
        xaxis={"type": "log", "tickvals": LOG_TICKS, "ticktext": [f"{t:g}x" for t in LOG_TICKS],
               "title": {"text": "failure rate, highest / lowest load bucket (log scale)"}},
        yaxis={"autorange": "reversed", "type": "category"})}


def ranked_signals(result: CorrelationResult) -> list[str]:
    """Return the signals in the ranking's order: the lead ranking's, then any it left out."""
    ranked = [s for s in result.leads.leaders["signal"]]
    return ranked + [s for s in result.ratios["signal"] if s not in ranked]


def ranking_rows(result: CorrelationResult, signal: str) -> list[dict]:
    """Return one table row per signal: rank, rate ratio and its verdict, AUC at the most telling lead."""
    from analysis.verdict import format_p

    leaders = result.leads.leaders.set_index("signal")
    table = result.ratios.set_index("signal")
    rows = []
    for index, name in enumerate(ranked_signals(result), start=1):
        ratio = table.loc[name]
        symbol, words, _css = VERDICT_STYLE.get(ratio["status"], ("●", ratio["status"], ""))
        lead = leaders.loc[name] if name in leaders.index else None
        auc = float(lead["auc"]) if lead is not None else math.nan
        rows.append({
            "rank": index, "signal": name, "selected": name == signal,
            "label": ("▸ " if name == signal else "") + signal_label(name),
            "ratio": ratio_words(ratio), "ratio_value": views.number(ratio["ratio"], 3),
            "p_adjusted": format_p(ratio["p_adjusted"]) if math.isfinite(ratio["p_adjusted"]) else "—",
            "verdict": f"{symbol} {words}", "status": ratio["status"],
            "auc": views.number(auc, 3),
            "lead": format_duration(float(lead["best_lead_seconds"])) if lead is not None and math.isfinite(auc)
            else "—",
            "auc_p": format_p(lead["p_adjusted"]) if lead is not None and math.isfinite(lead["p_adjusted"]) else "—",
            "leads": ("✔ yes" if bool(lead["precedes"]) else "no") if lead is not None and math.isfinite(auc)
            else "—",
        })
    return rows


def ranking_columns() -> list[dict]:
    """Return the ranking table's columns."""
    status_rules = {"cell-warn": "params.data.status == 'effect'"}
    return [
        {"field": "rank", "headerName": "#", "maxWidth": 60, "type": "numericColumn"},
        {"field": "label", "headerName": "load signal", "minWidth": 200, "flex": 2,
         "tooltipField": "signal", "cellStyle": {"cursor": "pointer"}},
        {"field": "signal", "headerName": "field", "minWidth": 200, "flex": 2},
        {"field": "ratio", "headerName": "rate ratio top/bottom", "minWidth": 210, "flex": 2,
         "headerTooltip": "failure rate in the highest load bucket over the rate in the lowest, 95% interval from "
                          "circular shifts of the failures"},
        {"field": "p_adjusted", "headerName": "adjusted p", "minWidth": 100,
         "headerTooltip": "circular-shift permutation p-value, adjusted over every signal and lag tested"},
        {"field": "verdict", "headerName": "verdict", "minWidth": 165, "cellClassRules": status_rules},
        {"field": "auc", "headerName": "AUC", "type": "numericColumn", "minWidth": 70,
         "headerTooltip": "chance that a step before a failure has a higher value than one that is not (0.5: none)"},
        {"field": "lead", "headerName": "lead", "minWidth": 70,
         "headerTooltip": "the lead time at which the signal tells failures apart best"},
        {"field": "auc_p", "headerName": "AUC p", "minWidth": 90,
         "headerTooltip": "calibrated against circular shifts of the failures, Benjamini-Hochberg adjusted"},
        {"field": "leads", "headerName": "precedes", "minWidth": 100,
         "headerTooltip": "significant at some lead (false discovery rate alpha / 2), claimed only for a signal "
                          "whose rate ratio shows an effect above: the ranking never claims more than the verdict",
         "cellClassRules": {"cell-warn": "params.value == '✔ yes'"}},
    ]


def clear_without_effect(result: CorrelationResult) -> list[str]:
    """Return the signals whose interval excludes 1 although the verdict finds no effect of them."""
    table = result.ratios
    clear = (table["lower"] > 1) | (table["upper"] < 1)
    return [signal_label(s) for s in table.loc[clear & (table["status"] == "no_significant_effect"), "signal"]]


def short_of_adjustment(result: CorrelationResult, labels: list[str]) -> str:
    """Return the sentence that says why an interval clear of 1 can stand beside "no significant effect"."""
    tested = int(result.ratios["status"].isin(["effect", "no_significant_effect"]).sum())
    lags = result.settings.lags
    looks = tested * len(lags)
    which = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
    return (f"Why an interval can exclude 1 beside \"no significant effect\" ({which}): each interval covers its "
            f"own signal and lag at 95%, so among {looks} of them ({tested} signals at "
            f"{'lags ' + ' and '.join(map(str, lags)) if len(lags) > 1 else f'lag {lags[0]}'}) some exclude 1 by "
            f"chance alone; the verdict counts an effect only when the p-value adjusted for all {looks} looks is "
            f"below {result.settings.family_alpha:g} (or when the failures shifted in time on their own hosts "
            f"show the same ratio: a difference between hosts, not a response to load).")


def ranking_table(result: CorrelationResult, signal: str):
    """Return the ranking as a sortable table; the picked signal's row is marked ▸ and shaded; a click picks one."""
    table = views.grid("correlation-ranking-grid", ranking_rows(result, signal), ranking_columns())
    table.getRowId = "params.data.signal"
    table.getRowStyle = {"styleConditions": [
        {"condition": "params.data.selected", "style": {"backgroundColor": "#e4eefa", "fontWeight": "600"}}]}
    return table


def verdict_box(result: CorrelationResult, state: PageState) -> html.Div:
    """Return the verdict as a word with its symbol, the finding sentence, and how the analysis looked."""
    status = result.verdict.status
    symbol, words, css = VERDICT_STYLE[status]
    one, many = failure_nouns(result.kinds)
    scope = "the whole fleet" if not state.hosts else ", ".join(state.hosts[:5]) + (
        f" and {len(state.hosts) - 5} more" if len(state.hosts) > 5 else "")
    hosts = len(result.hosts)
    failing = result.failing_hosts
    placed = (f"{result.failures} {one if result.failures == 1 else many} on {failing} host"
              f"{'' if failing == 1 else 's'} · {hosts} host{'' if hosts == 1 else 's'} with load data ({scope})"
              if hosts else f"no host in {scope} sent load data in this range")
    facts = [placed,
             f"{format_duration(result.step_seconds)} steps",
             (f"load taken from {lag_words(result.lag_steps, result.step_seconds)}" + (
                 f" (lags {' and '.join(map(str, result.settings.lags))} looked at, adjusted for both)"
                 if len(result.settings.lags) > 1 else ""))
             if len(result.settings.lags) == 1 or status in ("effect", "no_significant_effect") else
             f"lags {' and '.join(map(str, result.settings.lags))} looked at",
             f"{int(result.ratios['status'].isin(['effect', 'no_significant_effect']).sum())} of "
             f"{len(result.ratios)} signals tested"]
    without = result.rates[state.signal].failures_without_signal if state.signal in result.rates else 0
    if without:
        facts.append(f"{without} of the {many} fell where {signal_label(state.signal)} has no value at the step "
                     f"compared (no data for that step: a step shorter than the agents' interval leaves gaps)")
    if result.unplaced_failures:
        facts.append(f"{result.unplaced_failures} {many} left out (their hosts sent no load data)")
    border = VERDICT_BORDER.get(status, "#5d6670")
    return html.Div([
        html.Div([html.Span(f"{symbol} {words}", className=f"chip {css}", id="correlation-verdict",
                            **{"data-status": status}, style={"fontSize": "15px"}),
                  html.Span(result.verdict.reason, className="section-note", style={"marginLeft": "10px"})]),
        html.P(result.finding, id="correlation-finding-text",
               style={"fontSize": "17px", "fontWeight": 600, "margin": "8px 0 6px", "lineHeight": "1.4"}),
        html.P(" · ".join(facts), className="section-note"),
    ], style={"borderLeft": f"6px solid {border}", "padding": "4px 0 4px 14px"})


def selected_summary(result: CorrelationResult, signal: str) -> html.P:
    """Return one line on the picked signal when the finding is about another one (or about none)."""
    from analysis.verdict import format_p

    row = ratio_row(result, signal)
    symbol, words, _css = VERDICT_STYLE.get(row["status"], ("●", row["status"], ""))
    p = f", adjusted {format_p(row['p_adjusted'])}" if math.isfinite(row["p_adjusted"]) else ""
    return html.P([html.B(f"{signal_label(signal)}: "),
                   f"highest against lowest load bucket {ratio_words(row)}{p}: {symbol} {words}."],
                  id="correlation-selected-summary", style={"margin": "6px 0 0"})


def _graph(graph_id: str, figure: dict, note: str) -> html.Div:
    """Return a figure with a note under it."""
    return html.Div([dcc.Graph(id=graph_id, figure=figure, config=GRAPH_CONFIG),
                     html.P(note, className="section-note")])


def _section(title: str, body_id: str, note: str, body) -> html.Section:
    """Return a titled page section holding `body` (the id lets a reader find it)."""
    return html.Section([html.H2(title), html.P(note, className="section-note"), html.Div(body, id=body_id)],
                        className="vw-section")


def render(result: CorrelationResult, state: PageState, longer: str = "") -> tuple:
    """Return the page's two parts for a result: (the verdict and finding, the charts and the ranking).

    With too few failures or too little load data the verdict says so and, instead of the charts, what to try
    (`longer`: a sentence naming a range that holds enough failures, when one is known): an empty chart would
    look like an answer.
    """
    signal = state.signal
    finding = [verdict_box(result, state)]
    status = result.verdict.status
    if status in ("not_enough_failures", "not_enough_exposure"):
        what = "Too few failures" if status == "not_enough_failures" else "Too little load data"
        hint = ((f"{longer} " if longer else "") +
                "Pick a longer time range, the whole fleet instead of a few hosts, or several failure kinds at "
                "once (the daemon button picks every daemon failure)." if status == "not_enough_failures" else
                "Pick a longer time range or more hosts: both the lowest and the highest load bucket of a signal "
                f"need at least {result.settings.min_bucket_host_days:g} host-day of load data.")
        waiting = views.empty_state(f"{what} to draw the rates by load, the load around failures or the "
                                    f"ranking.", hint, kind="coming")
        return finding, html.Section(waiting, className="vw-section", id="correlation-waiting")
    if result.verdict.signal != signal:
        finding.append(selected_summary(result, signal))
    rates = result.rates[signal]
    _one, many = failure_nouns(result.kinds)
    if len(rates.buckets) < 2:
        rates_part = views.empty_state(
            f"{signal_label(signal)[:1].upper()}{signal_label(signal)[1:]} never varied on host-steps with load "
            f"data in this range: no buckets to compare.", "Pick another load signal.", kind="coming")
    else:
        rates_part = _graph("correlation-rates-graph", rates_figure(result, signal),
                            f"Each bucket holds about the same host-time, split at quantiles of the step means; "
                            f"bars are {many} per host-day with exact (Garwood) 95% intervals; the dashed line is "
                            f"the rate over all steps. A red hatched bar marks the bucket of a significant effect.")
    triggered_part = _graph("correlation-triggered-graph", triggered_figure(result, signal),
                            f"Mean of the step means at each offset around the {many} (red, ✖) against the same "
                            f"around {result.triggered[signal].baseline_samples} random host-steps (grey, dashed); "
                            f"shaded: 95% intervals of the means. Load at and after the failure may be its effect, "
                            f"not its cause.")
    ranking = html.Div([
        html.Div([
            html.Div(dcc.Graph(id="correlation-ratios-graph", figure=ratios_figure(result, signal),
                               config=GRAPH_CONFIG), className="col"),
            html.Div([
                html.P("Left: each signal's failure rate in its highest load bucket over the rate in its lowest, "
                       "with its 95% interval from circular shifts of the failures (the test that decides), "
                       "strongest evidence first. ◆ red: an effect (permutation p adjusted over every signal and "
                       f"lag tested, p < {result.settings.family_alpha:g}, and an interval clear of 1); ○ grey: none "
                       "shown; ▸ the signal drawn above. The verdict rests on these ratios.",
                       className="section-note"),
                html.P("Below: the signals ranked by how well their value at some lead time tells the steps "
                       "before a failure from the rest (AUC, calibrated against circular shifts of the failures, "
                       "Benjamini-Hochberg over signals and leads): a list to look into, not a verdict; "
                       "\"precedes\" is claimed only for a signal with an effect above. Click a row to draw that "
                       "signal.", className="section-note"),
            ], className="col"),
        ], className="two-col"),
        ranking_table(result, signal),
        *([html.P(short_of_adjustment(result, clear), id="correlation-adjustment-note", className="section-note")]
          if (clear := clear_without_effect(result)) else []),
    ])
    body = html.Div([
        html.Div([
            html.Div(_section("Failure rate by load", "correlation-rates",
                              f"{many[:1].upper()}{many[1:]} per host-day in each bucket of "
                              f"{signal_label(signal)}.", rates_part), className="col"),
            html.Div(_section("Load around failures", "correlation-triggered",
                              f"{signal_label(signal)[:1].upper()}{signal_label(signal)[1:]} from "
                              f"{format_duration(result.settings.window_seconds)} before to "
                              f"{format_duration(result.settings.window_seconds)} after each failure.",
                              triggered_part), className="col"),
        ], className="two-col"),
        _section("Ranking of the load signals", "correlation-ranking", "", ranking),
    ])
    return finding, body

