"""Plotly figure builders shared by the pages: pure functions of frames, no reads.

Colours carry meaning and never alone: failures are red with an ✖ marker, warnings amber with a ▲, thresholds
are dashed lines with their value written beside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from alerts.burn import WindowBurn

SEVERITY_COLOURS = {"critical": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
SEVERITY_SYMBOLS = {"critical": "x", "warning": "triangle-up", "info": "circle"}
SERIES_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2")
MARGIN = {"l": 60, "r": 20, "t": 30, "b": 40}
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def _base(fig: go.Figure, height: int, x_range: tuple | None = None) -> go.Figure:
    """Apply the common look: white plot, legend on top, hover across series, fixed x range."""
    fig.update_layout(template="plotly_white", height=height, margin=MARGIN, font=FONT, hovermode="x unified",
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left"})
    if x_range is not None:
        fig.update_xaxes(range=list(x_range))
    return fig


def x_range(start_ns: int, end_ns: int) -> tuple:
    """Return a plotly x range for [start, end) as UTC timestamps."""
    import pandas as pd

    return (pd.Timestamp(start_ns, unit="ns", tz="UTC"), pd.Timestamp(end_ns, unit="ns", tz="UTC"))


def plot_template() -> dict:
    """Return the plotly_white template as plain data (built once: figures as dicts skip plotly's validation)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        import plotly.io as pio

        _TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


_TEMPLATE: dict | None = None


def dict_layout(height: int, **more) -> dict:
    """Return the common layout of a dict figure: white plot, legend on top, hover across series; `more` wins."""
    return {"template": plot_template(), "height": height, "margin": MARGIN, "font": FONT, "hovermode": "x unified",
            "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left"}, **more}


def _iso(times) -> list[str]:
    """Return timestamps as ISO strings for a dict figure."""
    return [t.isoformat() for t in times]


def _hline(y: float, colour: str, text: str, position: str) -> tuple[dict, dict]:
    """Return a dashed horizontal line across the plot and its label, as a shape and an annotation."""
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
             "line": {"dash": "dash", "color": colour}}
    note = {"xref": "paper", "x": 0, "xanchor": "left", "yref": "y", "y": y,
            "yanchor": "bottom" if position == "top" else "top", "text": text, "showarrow": False,
            "font": {"color": colour}}
    return shape, note


def fleet_burn_figure(series: pd.DataFrame, start_ns: int, end_ns: int) -> dict:
    """Return the fleet-wide burn rate of each SLO per window, with the 1x line (budget spent exactly on time)."""
    traces = []
    for index, (slo, rows) in enumerate(series.groupby("slo", sort=True)):
        traces.append({"type": "scatter", "x": _iso(rows["time"]), "y": rows["burn_rate"].round(4).tolist(),
                       "name": slo, "mode": "lines+markers", "marker": {"size": 4},
                       "line": {"color": SERIES_COLOURS[index % len(SERIES_COLOURS)]}, "hovertemplate": "%{y:.2f}x"})
    shape, note = _hline(1.0, "#555", "1x: budget lasts the period", "top")
    x0, x1 = x_range(start_ns, end_ns)
    return {"data": traces, "layout": dict_layout(
        300, shapes=[shape], annotations=[note], xaxis={"range": [x0.isoformat(), x1.isoformat()], "type": "date"},
        yaxis={"title": {"text": "burn rate (x budget)"}, "rangemode": "tozero"})}


def host_health_figure(health: pd.DataFrame, load: pd.DataFrame, events: pd.DataFrame,
                       start_ns: int, end_ns: int) -> go.Figure:
    """Return the daemon's health and the host's load in rows sharing one time axis, with events drawn across."""
    import pandas as pd
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("events", "probe latency (ms, worst per window)", "workers free and job queue",
              "daemon RSS (MiB)", "open file descriptors and limit", "restarts (total)", "host load")
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.035,
                        subplot_titles=titles, row_heights=[0.6, 1, 1, 1, 1, 0.7, 1])

    def legend(row: int) -> str:
        """Name the legend of a row: each row's legend sits at its own top right."""
        return "legend" if row == 1 else f"legend{row}"

    def line(row: int, column: str, name: str, colour: str, scale: float = 1.0, shape: str = "linear",
             dash: str | None = None) -> None:
        if column not in health or health[column].isna().all():
            return
        fig.add_trace(go.Scatter(x=health["time"], y=health[column] / scale, name=name, mode="lines",
                                 line={"color": colour, "shape": shape, "dash": dash}, connectgaps=False,
                                 legend=legend(row)), row=row, col=1)

    if len(events):
        for severity, rows in events.groupby("severity", sort=False):
            label = [f"{k}{' (' + d + ')' if d else ''}: {m if isinstance(m, str) else ''}"
                     for k, d, m in zip(rows["kind"], rows["domain"], rows["message"])]
            fig.add_trace(go.Scatter(
                x=rows["time"], y=[severity] * len(rows), mode="markers", name=f"{severity} events",
                marker={"symbol": SEVERITY_SYMBOLS.get(severity, "circle"), "size": 11,
                        "color": SEVERITY_COLOURS.get(severity, "#555")},
                text=label, hovertemplate="%{text}<extra></extra>", meta="events", legend=legend(1)), row=1, col=1)
        for when in events.loc[events["severity"] == "critical", "time"]:
            fig.add_vline(x=when, line={"color": SEVERITY_COLOURS["critical"], "width": 1, "dash": "dot"},
                          opacity=0.6)
    fig.update_yaxes(categoryorder="array", categoryarray=["info", "warning", "critical"], row=1, col=1)
    line(2, "probe_latency_ms", "probe latency", "#1f77b4")
    line(3, "workers_free", "free workers (min)", "#2ca02c")
    line(3, "job_queue_depth", "job queue (max)", "#c62828", dash="dot")
    line(4, "rss_bytes", "RSS", "#9467bd", scale=2**20)
    line(5, "open_fds", "open fds", "#8c564b")
    line(5, "max_fds", "fd limit", "#555555", dash="dash")
    line(6, "restarts_total", "restarts", "#ef6c00", shape="hv")
    if len(load):
        for column, colour, dash in (("load1", "#17becf", None), ("load5", "#1f77b4", "dot"),
                                     ("load15", "#7f7f7f", "dashdot")):
            fig.add_trace(go.Scatter(x=load["time"], y=load[column], name=column, mode="lines",
                                     line={"color": colour, "dash": dash}, legend=legend(7)), row=7, col=1)
        if "cpus" in load and load["cpus"].notna().any():
            fig.add_trace(go.Scatter(x=load["time"], y=load["cpus"], name="CPUs", mode="lines",
                                     line={"color": "#555", "dash": "dash"}, legend=legend(7)), row=7, col=1)
    if "up" in health and (health["up"] == 0).any():
        for when in health.loc[health["up"] == 0, "time"]:
            fig.add_vrect(x0=when, x1=when + pd.Timedelta(seconds=1), line_width=0, fillcolor="#c62828",
                          opacity=0.15)
    fig.update_yaxes(rangemode="tozero", row=6, col=1)
    fig.update_annotations(font={"size": 12}, xanchor="left", x=0)
    fig = _base(fig, 1150, x_range(start_ns, end_ns))
    fig.update_layout(hovermode="x", showlegend=True)
    for row in range(1, len(titles) + 1):
        top = fig.layout["yaxis" if row == 1 else f"yaxis{row}"].domain[1]
        fig.update_layout({legend(row): {"orientation": "h", "x": 1, "xanchor": "right", "y": top,
                                         "yanchor": "bottom", "font": {"size": 11}, "bgcolor": "rgba(0,0,0,0)"}})
    fig.update_xaxes(showticklabels=True, row=len(titles), col=1)
    return fig


def sli_figure(series: pd.DataFrame, objective: float, start_ns: int, end_ns: int) -> dict:
    """Return an SLO's SLI per window against its objective (a dashed line)."""
    values = series["sli_percent"].round(4).tolist()
    trace = {"type": "scatter", "x": _iso(series["time"]), "y": values, "mode": "lines+markers", "name": "SLI",
             "marker": {"size": 4}, "line": {"color": "#1f77b4"}, "hovertemplate": "%{y:.3f}%"}
    shape, note = _hline(objective, "#c62828", f"objective {objective:g}%", "bottom")
    low = min([objective - 1.0, *values])
    x0, x1 = x_range(start_ns, end_ns)
    return {"data": [trace], "layout": dict_layout(
        260, shapes=[shape], annotations=[note], xaxis={"range": [x0.isoformat(), x1.isoformat()], "type": "date"},
        yaxis={"title": {"text": "good / valid (%)"}, "range": [max(0.0, low - 0.5), 100.2]})}


def burn_windows_figure(windows: tuple[WindowBurn, ...]) -> dict:
    """Return each alert window's long and short burn rate as bars against its threshold (a ▬ marker)."""
    names = [f"{w.window.name} ({w.window.severity})" for w in windows]
    data = [
        {"type": "bar", "x": names, "y": [w.long_burn or 0 for w in windows], "name": "long window",
         "marker": {"color": "#1f77b4"}, "hovertemplate": "%{y:.2f}x"},
        {"type": "bar", "x": names, "y": [w.short_burn or 0 for w in windows], "name": "short window",
         "marker": {"color": "#9ecae1"}, "hovertemplate": "%{y:.2f}x"},
        {"type": "scatter", "x": names, "y": [w.window.factor for w in windows], "name": "alert threshold",
         "mode": "markers+text", "marker": {"symbol": "line-ew-open", "size": 40, "color": "#c62828",
                                            "line": {"width": 3}},
         "text": [f"{w.window.factor:g}x" for w in windows], "textposition": "top center",
         "hovertemplate": "threshold %{y:g}x"},
    ]
    return {"data": data, "layout": dict_layout(260, barmode="group", hovermode="x",
                                            yaxis={"title": {"text": "burn rate (x budget)"}, "rangemode": "tozero"})}
