"""SLOs: per SLO the error budget left, the SLI over time, burn rate per alert window, the hosts that burn most."""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

from dashboard import data, views

dash.register_page(__name__, path="/slos", name="SLOs", title="virtwatch: SLOs", order=2)

TOP_HOSTS = 10


def layout(**_params):
    """Return the SLO page: one card per SLO, filled by one callback."""
    return html.Div([
        views.page_header("SLOs", "error budgets as of the end of the range; the SLI and burn per window over it"),
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
    series = data.sli_series(context.store, context.slos, rng)
    evaluations = data.slo_evaluations(context.store, context.slos, rng.end_ns)
    return [_card(rng, index, slo, series[series["slo"] == slo.name], evaluations[slo.name])
            for index, slo in enumerate(context.slos)]


def _card(rng, index, slo, series, evaluations):
    """Return one SLO's card."""
    from dashboard.figures import burn_windows_figure, sli_figure

    fleet = evaluations[None]
    word, css = budget_word(fleet.budget_remaining)
    remaining = "—" if fleet.budget_remaining is None else f"{100 * fleet.budget_remaining:.1f}%"
    head = html.Div([
        html.Div([html.H2(slo.name), html.P(slo.description, className="section-note")]),
        html.Div([html.Span(remaining, className="big-number"), html.Span(word, className=f"chip {css}"),
                  html.Div(f"budget left · objective {slo.objective:g}% over {slo.period}",
                           className="section-note")], className="budget-box"),
    ], className="slo-head")
    sli = (dcc.Graph(figure=sli_figure(series, slo.objective, rng.start_ns, rng.end_ns),
                     config={"displaylogo": False}) if len(series) else
           views.empty_state(f"No SLI rollups for {slo.name} in the {rng.label}.",
                             "The alert engine (virtwatch alerts) writes them every round."))
    firing = [w.window.name for w in fleet.windows if w.firing]
    burn = html.Div([
        html.H3("Burn rate per alert window"),
        html.P("Fires when both the long and the short window burn at least the threshold. "
               + (f"Firing now: {', '.join(firing)}." if firing else "None fires now."),
               className="section-note" + (" cell-bad" if firing else "")),
        dcc.Graph(figure=burn_windows_figure(fleet.windows), config={"displaylogo": False}),
    ])
    hosts = sorted(((host, ev) for host, ev in evaluations.items() if host is not None and ev.period.total > 0),
                   key=lambda item: (item[1].budget_remaining if item[1].budget_remaining is not None else 2.0,
                                     item[0]))[:TOP_HOSTS]
    rows = [{"host_link": f"[{views.markdown_escape(host)}]({views.host_href(host)})",
             "budget": round(100 * ev.budget_remaining, 1) if ev.budget_remaining is not None else None,
             "bad": int(ev.period.bad), "valid": int(ev.period.total),
             "burn_1h": next((round(w.long_burn, 2) for w in ev.windows if w.long_burn is not None
                              and w.window.long_seconds == 3600), None)}
            for host, ev in hosts]
    table = (views.grid(f"slos-hosts-{index}", rows, [
        {"field": "host_link", "headerName": "host", "cellRenderer": "markdown", "minWidth": 180},
        {"field": "budget", "headerName": "budget left", "type": "numericColumn",
         "valueFormatter": views.BUDGET_FORMATTER, "cellClassRules": views.BUDGET_CLASS_RULES},
        {"field": "bad", "headerName": f"bad events ({slo.period})", "type": "numericColumn"},
        {"field": "valid", "headerName": "valid events", "type": "numericColumn"},
        {"field": "burn_1h", "headerName": "burn, last 1h", "type": "numericColumn"},
    ]) if rows else views.empty_state(f"No host has events for {slo.name} in its period."))
    return html.Section([head, html.Div([html.Div([html.H3("SLI over the range"), sli], className="col"),
                                         html.Div(burn, className="col")], className="two-col"),
                         html.H3(f"Hosts burning the most (top {TOP_HOSTS})"), table],
                        className="vw-section slo-card")
