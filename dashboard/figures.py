"""Plotly figure builders shared by the pages: pure functions of frames, no reads.

Colours carry meaning and never alone: failures are red with an ✖ marker, warnings amber with a ▲, thresholds
are dashed lines with their value written beside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import plotly.graph_objects as go

    from alerts.burn import WindowBurn
    from alerts.leaks import FdForecast
    from dashboard.host_bands import Interval

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


def fleet_burn_figure(series: pd.DataFrame, start_ns: int, end_ns: int, window_seconds: int | None = None) -> dict:
    """Return the fleet-wide burn rate of each SLO per window, with the 1x line (budget spent exactly on time);
    the legend and the axis say the window each point covers (`window_seconds`, else the series' own spacing)."""
    from tsdb.times import format_duration as duration

    if window_seconds is None:
        times = sorted(set(series["time"].astype("int64").tolist()))
        steps = [later - earlier for earlier, later in zip(times, times[1:]) if later > earlier]
        window_seconds = min(steps) // 10**9 if steps else None
    window = f"{duration(window_seconds)} window" if window_seconds else "window"
    traces = []
    for index, (slo, rows) in enumerate(series.groupby("slo", sort=True)):
        traces.append({"type": "scatter", "x": _iso(rows["time"]), "y": rows["burn_rate"].round(4).tolist(),
                       "name": slo, "mode": "lines+markers", "marker": {"size": 4},
                       "line": {"color": SERIES_COLOURS[index % len(SERIES_COLOURS)]},
                       "hovertemplate": f"%{{y:.2f}}x over the {window} from %{{x}}<extra>{slo}</extra>"})
    shape, note = _hline(1.0, "#555", "1x: budget lasts the period", "top")
    x0, x1 = x_range(start_ns, end_ns)
    return {"data": traces, "layout": dict_layout(
        300, shapes=[shape], annotations=[note], xaxis={"range": [x0.isoformat(), x1.isoformat()], "type": "date"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left",
                "title": {"text": f"burn rate per {window}:"}},
        yaxis={"title": {"text": f"burn rate per {window} (x budget)"}, "rangemode": "tozero"})}


#: the host figure's rows: (title, relative height); they share one time axis, the events strip on top
HOST_ROWS = (("events", 0.6), ("probe latency (ms, worst per window)", 1), ("workers free and job queue", 1),
             ("daemon RSS (MiB)", 1), ("open file descriptors and limit", 1), ("restarts (total)", 0.7),
             ("host load", 1))
HOST_ROW_SPACING = 0.035
HOST_FIGURE_HEIGHT = 1150


def row_domains(heights: Sequence[float], spacing: float) -> list[tuple[float, float]]:
    """Return each row's vertical domain (paper units, the first row on top), heights relative, gaps `spacing`."""
    room = 1 - spacing * (len(heights) - 1)
    domains, top = [], 1.0
    for height in heights:
        bottom = top - room * height / sum(heights)
        domains.append((max(0.0, round(bottom, 6)), round(top, 6)))
        top = bottom - spacing
    return domains


def _numbers(values, scale: float = 1.0) -> list[float | None]:
    """Return values divided by scale as JSON numbers, None where missing."""
    return [None if v is None or v != v else float(v) / scale for v in values]


def host_health_figure(health: pd.DataFrame, load: pd.DataFrame, events: pd.DataFrame,
                       start_ns: int, end_ns: int, *, bands: Sequence[Interval] = (),
                       forecast: FdForecast | None = None) -> dict:
    """Return the daemon's health and the host's load in rows sharing one time axis: hang and down intervals as
    bands and failure events as lines through every row, each hang's cause beside its band, the restarts that freed
    descriptors marked on the fds row, and (given a leak's `forecast`) the fds projected to their limit. A dict
    figure: plotly's validation of a subplot figure took most of a second."""
    import pandas as pd

    from tsdb.times import format_duration as duration_text
    from dashboard import host_bands

    rows = len(HOST_ROWS)
    domains = row_domains([height for _title, height in HOST_ROWS], HOST_ROW_SPACING)
    traces: list[dict] = []
    lowest: dict[int, float] = {}  # row -> its lowest value drawn (where the event lines' hover points sit)

    def axes(row: int) -> dict:
        """Return a trace's axes and legend in a row: each row's legend sits at its own top right."""
        suffix = "" if row == 1 else str(row)
        return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "legend": f"legend{suffix}"}

    def add(row: int, times, values, name: str, colour: str, shape: str = "linear", dash: str | None = None,
            scale: float = 1.0) -> None:
        """Add a line to a row and remember the row's lowest value."""
        y = _numbers(values, scale)
        traces.append({"type": "scatter", "x": _iso(times), "y": y, "name": name, "mode": "lines",
                       "line": {"color": colour, "shape": shape, "dash": dash or "solid"}, "connectgaps": False,
                       **axes(row)})
        known = [v for v in y if v is not None]
        if known:
            lowest[row] = min(lowest.get(row, known[0]), min(known))

    def line(row: int, column: str, name: str, colour: str, scale: float = 1.0, shape: str = "linear",
             dash: str | None = None) -> None:
        """Add a health column to a row, when the host reported it."""
        if column not in health or health[column].isna().all():
            return
        add(row, health["time"], health[column], name, colour, shape, dash, scale)

    if len(events):
        for severity, group in events.groupby("severity", sort=False):
            label = [f"{k}{' (' + d + ')' if d else ''}: {m if isinstance(m, str) else ''}"
                     for k, d, m in zip(group["kind"], group["domain"], group["message"])]
            traces.append({"type": "scatter", "x": _iso(group["time"]), "y": [severity] * len(group),
                           "mode": "markers", "name": f"{severity} events",
                           "marker": {"symbol": SEVERITY_SYMBOLS.get(severity, "circle"), "size": 11,
                                      "color": SEVERITY_COLOURS.get(severity, "#555")},
                           "text": label, "hovertemplate": "%{text}<extra></extra>", "meta": "events", **axes(1)})
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
            add(7, load["time"], load[column], column, colour, dash=dash)
        if "cpus" in load and load["cpus"].notna().any():
            add(7, load["time"], load["cpus"], "CPUs", "#555", dash="dash")
    x_end = pd.Timestamp(end_ns, unit="ns", tz="UTC")
    notes: list[dict] = []
    if forecast is not None and forecast.limit_at_ns() is not None:
        limit_at = forecast.limit_at_ns()
        at, limit = pd.Timestamp(forecast.at_ns, unit="ns", tz="UTC"), pd.Timestamp(limit_at, unit="ns", tz="UTC")
        traces.append({"type": "scatter", "x": [at.isoformat(), limit.isoformat()],
                       "y": [forecast.open_fds, forecast.max_fds], "mode": "lines+markers",
                       "name": "forecast to the limit", "line": {"color": "#c62828", "dash": "dash", "width": 2},
                       "marker": {"symbol": ["circle", "x"], "size": 9}, "meta": "fd-forecast",
                       "hovertemplate": "%{y:.0f} fds at %{x}<extra>forecast</extra>", **axes(5)})
        if limit_at - end_ns <= (end_ns - start_ns) // 2:
            x_end = max(x_end, limit + pd.Timedelta(end_ns - start_ns) / 50)
        notes.append({"xref": "x", "x": at.isoformat(), "xanchor": "right", "yref": "y5", "y": forecast.open_fds,
                      "yanchor": "top", "showarrow": False, "font": {"size": 11, "color": "#b3261e"},
                      "text": f"▲ limit in {duration_text(forecast.seconds_to_limit)} ({limit:%Y-%m-%d %H:%M} UTC)",
                      "bgcolor": "rgba(255,255,255,0.88)", "name": "fd-forecast"})
    lines = host_bands.event_lines(events)
    for drop in host_bands.fd_drops(lines, health):
        notes.append({"xref": "x", "x": pd.Timestamp(drop.time_ns, unit="ns", tz="UTC").isoformat(),
                      "xanchor": "left", "yref": "y5", "y": drop.fds_before, "yanchor": "top", "showarrow": False,
                      "text": f"↻ restart: fds {drop.fds_before:,.0f} → {drop.fds_after:,.0f}",
                      "font": {"size": 11, "color": "#9a4d00"}, "bgcolor": "rgba(255,255,255,0.88)",
                      "name": "fd-drop"})
    if lines:  # the lines' hover text, in every row that draws values
        times = [pd.Timestamp(event.time_ns, unit="ns", tz="UTC").isoformat() for event in lines]
        for row, low in lowest.items():
            traces.append({"type": "scatter", "x": times, "y": [low] * len(lines), "mode": "markers",
                           "marker": {"size": 8, "opacity": 0}, "text": [event.text for event in lines],
                           "showlegend": False, "hovertemplate": "%{text}<extra></extra>", "meta": "event-lines",
                           "name": "events", **axes(row)})
    panels = ["y" if row == 1 else f"y{row}" for row in range(1, rows + 1)]
    titles = [{"xref": "paper", "x": 0, "xanchor": "left", "yref": "paper", "y": top, "yanchor": "bottom",
               "text": title, "showarrow": False, "font": {"size": 12}}
              for (title, _height), (_bottom, top) in zip(HOST_ROWS, domains)]
    layout = dict_layout(HOST_FIGURE_HEIGHT, hovermode="x", showlegend=True,
                         shapes=host_bands.band_shapes(list(bands), panels) + host_bands.line_shapes(lines, panels),
                         annotations=titles + host_bands.band_notes(list(bands), duration_text, start_ns, end_ns,
                                                                    "y2") + notes)
    x_range = [pd.Timestamp(start_ns, unit="ns", tz="UTC").isoformat(), x_end.isoformat()]
    for row, (bottom, top) in enumerate(domains, start=1):
        suffix = "" if row == 1 else str(row)
        layout[f"xaxis{suffix}"] = {"type": "date", "range": x_range, "anchor": f"y{suffix}",
                                    "showticklabels": row == rows, **({"matches": "x"} if row > 1 else {})}
        layout[f"yaxis{suffix}"] = {"domain": [bottom, top], "anchor": f"x{suffix}"}
        layout[f"legend{suffix}"] = {"orientation": "h", "x": 1, "xanchor": "right", "y": top, "yanchor": "bottom",
                                     "font": {"size": 11}, "bgcolor": "rgba(0,0,0,0)"}
    layout["yaxis"].update(type="category", categoryorder="array", categoryarray=["info", "warning", "critical"])
    layout["yaxis6"]["rangemode"] = "tozero"
    return {"data": traces, "layout": layout}


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
