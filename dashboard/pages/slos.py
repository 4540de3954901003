"""SLOs: per SLO the alerts that fire now, the error budget left and how much data it covers, the SLI over time,
burn rate per alert window, and the hosts that burn fastest."""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

from dashboard import data, slo_data, views

dash.register_page(__name__, path="/slos", name="SLOs", title="virtwatch: SLOs", order=2)

TOP_HOSTS = 10


def layout(**_params):
    """Return the SLO page: one card per SLO, filled by one callback."""
    return html.Div([
        views.page_header("SLOs", "alerts firing now; error budgets as of the end of the range; the SLI and burn "
                                  "per window over it"),
        dcc.Loading(html.Div(id="slos-cards"), type="dot", delay_show=400),
    ])


def budget_word(remaining: float | None) -> tuple[str, str]:
    """Return how a budget stands in words with its css class: healthy, at risk, exhausted, or no data."""
    if remaining is None:
        return "? no data", "status-nodata"
    if remaining < 0:
        return "✖ exhausted", "status-down"
    if remaining < 0.25:
        return "▲ at risk", "status-hung"
    return "✔ healthy", "status-up"


@callback(Output("slos-cards", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"))
@views.guarded("the SLOs")
def slo_cards(range_data, _tick):
    """Return a card per SLO."""
    context, rng = views.page_range(range_data)
    if not context.slos:
        return views.empty_state("No SLOs are configured.",
                                 "Set [alerts] slo_file in the config to an SLO file (see deploy/slos.toml).")
    reads = data.concurrently({  # side by side: the page waits for the slowest read, not their sum
        "series": lambda: data.sli_series(context.store, context.slos, rng),
        "evaluations": lambda: data.slo_evaluations(context.store, context.slos, rng.end_ns),
        "since": lambda: slo_data.data_since(context.store, context.slos, rng.end_ns),
    })
    series, evaluations, since = reads["series"], reads["evaluations"], reads["since"]
    firing = slo_data.firing_by_slo(data.active_alerts(context.state_dir, context.clock))
    return [_card(rng, index, slo, series[series["slo"] == slo.name], evaluations[slo.name],
                  firing.get(slo.name, []), slo_data.coverage_words(slo, since[slo.name], rng.end_ns))
            for index, slo in enumerate(context.slos)]


def _firing_box(index: int, firing: list[slo_data.Firing]) -> html.Div:
    """Return what fires now for one SLO: a chip and a line per severity naming the hosts, or that none fires."""
    if not firing:
        return html.Div([html.Span("✔ no alert fires", className="chip status-up")],
                        className="slo-firing", id=f"slos-firing-{index}", **{"data-firing": "no"})
    return html.Div([html.Span("✖ firing", className="chip status-down"),
                     *[html.Div(f.sentence(), className="slo-firing-line cell-bad") for f in firing]],
                    className="slo-firing", id=f"slos-firing-{index}", **{"data-firing": "yes"})


def _window_label(burn) -> str:
    """Return the long window of an alert window as words: "1h"."""
    return burn.window.name.split("-")[1]


def _card(rng, index, slo, series, evaluations, firing, coverage):
    """Return one SLO's card."""
    from dashboard.figures import burn_windows_figure, sli_figure

    fleet = evaluations[None]
    word, css = budget_word(fleet.budget_remaining)
    remaining = "—" if fleet.budget_remaining is None else f"{100 * fleet.budget_remaining:.1f}%"
    head = html.Div([
        html.Div([html.H2(slo.name), html.P(slo.description, className="section-note"), _firing_box(index, firing)]),
        html.Div([html.Span(remaining, className="big-number"), html.Span(word, className=f"chip {css}"),
                  html.Div(f"budget left · objective {slo.objective:g}%", className="section-note"),
                  html.Div(coverage, className="section-note slo-coverage", id=f"slos-coverage-{index}")],
                 className="budget-box"),
    ], className="slo-head")
    sli = (dcc.Graph(figure=sli_figure(series, slo.objective, rng.start_ns, rng.end_ns),
                     config={"displaylogo": False}) if len(series) else
           views.empty_state(f"No SLI rollups for {slo.name} in the {rng.label}.",
                             "The alert engine (virtwatch alerts) writes them every round."))
    over = [w.window.name for w in fleet.windows if w.firing]
    burn = html.Div([
        html.H3("Fleet burn rate per alert window"),
        html.P("A window's condition holds when both its long and short window burn at least the threshold. "
               + (f"Fleet-wide now: {', '.join(over)}." if over else "Fleet-wide: no window's condition holds."),
               className="section-note"),
        dcc.Graph(figure=burn_windows_figure(fleet.windows), config={"displaylogo": False}),
    ])
    return html.Section([head, html.Div([html.Div([html.H3("SLI over the range"), sli], className="col"),
                                         html.Div(burn, className="col")], className="two-col"),
                         *_hosts_table(index, slo, evaluations, firing)],
                        className="vw-section slo-card", id=f"slos-card-{index}", **{"data-slo": slo.name})


def _hosts_table(index, slo, evaluations, firing) -> list:
    """Return the title and table of the hosts burning fastest (by the fastest alert window's burn)."""
    ranked = slo_data.burning_most(evaluations, TOP_HOSTS)
    fastest = slo_data.fastest_window(evaluations[None])
    by_window = sorted(evaluations[None].windows, key=lambda w: w.window.long_seconds)
    alerts_of: dict[str, list[str]] = {}
    for f in firing:
        for host in f.hosts:
            alerts_of.setdefault(host, []).append(f.severity)
    rows = []
    for host, ev in ranked:
        burns = {w.window.name: w.long_burn for w in ev.windows}
        rows.append({"host_link": f"[{views.markdown_escape(host)}]({views.host_href(host)})",
                     "alerts": " ".join(f"✖ {s}" for s in alerts_of.get(host, [])),
                     **{f"burn_{i}": views.number(burns.get(w.window.name), 2) for i, w in enumerate(by_window)},
                     "budget": round(100 * ev.budget_remaining, 1) if ev.budget_remaining is not None else None,
                     "bad": int(ev.period.bad), "valid": int(ev.period.total)})
    title = html.H3(f"Hosts burning the most (top {TOP_HOSTS}, by the burn over "
                    f"{_window_label(fastest) if fastest else '?'}, the fastest alert window)")
    if not rows:
        return [title, views.empty_state(f"No host has events for {slo.name} in its period.")]
    burn_columns = [{"field": f"burn_{i}", "headerName": f"burn over {_window_label(w)}", "type": "numericColumn",
                     "valueFormatter": {"function": "params.value == null ? '—' : params.value + 'x'"},
                     "cellClassRules": {"cell-bad": f"params.value != null && params.value >= {w.window.factor}"},
                     **({"sort": "desc"} if i == 0 else {})}
                    for i, w in enumerate(by_window)]
    return [title, views.grid(f"slos-hosts-{index}", rows, [
        {"field": "host_link", "headerName": "host", "cellRenderer": "markdown", "minWidth": 180},
        {"field": "alerts", "headerName": "firing", "minWidth": 110, "cellClass": "cell-bad"},
        *burn_columns,
        {"field": "budget", "headerName": "budget left", "type": "numericColumn",
         "valueFormatter": views.BUDGET_FORMATTER, "cellClassRules": views.BUDGET_CLASS_RULES},
        {"field": "bad", "headerName": f"bad events ({slo.period})", "type": "numericColumn"},
        {"field": "valid", "headerName": "valid events", "type": "numericColumn"},
    ])]
