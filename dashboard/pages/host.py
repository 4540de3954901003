"""Host: why its libvirtd last failed (the newest diagnosis) and the evidence captured then, the daemon's health and
the host's load on one time axis with its failure events, its guests, its events."""

from __future__ import annotations

from urllib.parse import unquote

import dash
from dash import Input, Output, callback, dcc, html

from dashboard import data, forensics_data, forensics_view, host_data, host_view, views
from dashboard.host_guests import guest_label

dash.register_page(__name__, path_template="/host/<name>", name="Host", title="virtwatch: host", order=1)

PREFIX = "host/"


def layout(name=None, **_other):
    """Return the host page; the host's name comes from the path (read again by every callback)."""
    shown = unquote(name) if isinstance(name, str) else ""
    return html.Div([
        views.page_header("Host", "", [html.Span(shown, id="host-title", className="host-name")]),
        views.section("Why", "host-why", "The newest diagnosis in the range: what the agent found when libvirtd "
                      "hung, crashed or restarted."),
        views.section("Forensics", "host-forensics", "Evidence captured at each failure (threads, worker pool, "
                      "clients, logs, guests), newest first; open one to read it."),
        views.section("libvirtd health, host load and events", "host-health",
                      "Worst value per window. Shaded bands: ‖ hung (amber) and ✖ down (red), each hang labelled "
                      "with its diagnosis; lines through every panel: ✖ segfaults and guest failures (red, dotted), "
                      "restarts (amber, dashed)."),
        views.section("Domains", "host-domains",
                      "Each guest labelled by its state at the end of the range (a failed guest that runs again "
                      "is recovered, its failure kept as history); CPU and I/O over its last 5 minutes."),
        views.section("Events", "host-events"),
    ])


def host_from_path(app_path: str | None) -> str:
    """Return the host name in a /host/<name> path (percent-decoded once), or "" for another path."""
    path = dash.get_app().strip_relative_path(app_path or "") or ""
    if not path.startswith(PREFIX):
        return ""
    return unquote(path[len(PREFIX):])


def _known(context, host: str):
    """Return None when the host is known, else the empty state saying it is not."""
    if not host:
        return views.empty_state("No host named in the address.", "Open a host from the fleet table.",
                                 kind="bad-input")
    if len(host) > 512 or host not in data.known_hosts(context.store):
        return views.empty_state(f"No host named {host[:200]!r} in the store.",
                                 "Check the name, or open a host from the fleet table.", kind="bad-input")
    return None


@callback(Output("host-health", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          Input("url", "pathname"))
@views.guarded("the host's health")
def health(range_data, _tick, pathname):
    """Return the leak warning, the hangs and outages, and the health figure (probe latency, workers and queue, RSS,
    fds, restarts, load) with the intervals as bands and the failures as lines through every panel."""
    from dashboard.figures import host_health_figure

    context, rng = views.page_range(range_data)
    host = host_from_path(pathname)
    unknown = _known(context, host)
    if unknown is not None:
        return unknown
    found = host_data.read_health(context.store, host, rng)
    if found.health.empty and found.load.empty and found.events.empty:
        return views.empty_state(f"{host} reported nothing in the {rng.label}.",
                                 "Pick a longer time range, or check the host's agent.")
    leak = found.leak
    figure = host_health_figure(found.health, found.load, found.events, rng.start_ns, rng.end_ns,
                                bands=found.intervals, forecast=leak.forecast if leak.sign("fds") else None)
    return html.Div([host_view.leak_warning(leak), host_view.interval_list(found.intervals),
                     dcc.Graph(id="host-health-graph", figure=figure, config={"displaylogo": False})])


@callback(Output("host-domains", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          Input("url", "pathname"))
@views.guarded("the host's domains")
def domains(range_data, _tick, pathname):
    """Return the domains table: state, CPU, memory, I/O, errors, failures in the range."""
    context, rng = views.page_range(range_data)
    host = host_from_path(pathname)
    unknown = _known(context, host)
    if unknown is not None:
        return unknown
    found = data.host_domains(context.store, host, rng)
    if not found:
        return views.empty_state(f"No domain on {host} in the {rng.label}.")
    failed_at = host_data.guest_failures(context.store, host, rng)
    labels = {d.domain: guest_label(d.state, failed_at.get(d.domain, (None, ""))[0], rng.end_ns, d.partial)
              for d in found}
    rows = [{"domain": d.domain, "state": d.state, "cpu_percent": views.number(d.cpu_percent),
             "vcpus": views.number(d.vcpus, 0), "memory_mib": views.number((d.memory_bytes or 0) / 2**20, 0)
             if d.memory_bytes is not None else None,
             "read_kib_s": views.number((d.read_bytes_per_second or 0) / 1024) if d.read_bytes_per_second is not None
             else None,
             "write_kib_s": views.number((d.write_bytes_per_second or 0) / 1024)
             if d.write_bytes_per_second is not None else None,
             "net_kib_s": views.number((d.net_bytes_per_second or 0) / 1024) if d.net_bytes_per_second is not None
             else None,
             "errors": views.number(d.errors_total, 0), "failures": d.failures,
             "flag": labels[d.domain][0], "look": labels[d.domain][1]}
            for d in found]
    failing = "params.data.look == 'failed' || params.data.look == 'wedged'"
    recovered = "params.data.look == 'recovered'"
    columns = [
        {"field": "flag", "headerName": "now", "minWidth": 235, "maxWidth": 300,
         "cellClassRules": {"cell-bad": failing, "cell-recovered": recovered}},
        {"field": "domain", "headerName": "domain", "minWidth": 150},
        {"field": "state", "headerName": "state", "minWidth": 90,
         "cellClassRules": {"cell-bad": "params.value == 'crashed'"}},
        {"field": "cpu_percent", "headerName": "CPU %", "type": "numericColumn"},
        {"field": "vcpus", "headerName": "vCPUs", "type": "numericColumn"},
        {"field": "memory_mib", "headerName": "memory MiB", "type": "numericColumn"},
        {"field": "read_kib_s", "headerName": "read KiB/s", "type": "numericColumn"},
        {"field": "write_kib_s", "headerName": "write KiB/s", "type": "numericColumn"},
        {"field": "net_kib_s", "headerName": "net KiB/s", "type": "numericColumn"},
        {"field": "errors", "headerName": "I/O errors", "type": "numericColumn",
         "cellClassRules": {"cell-bad": "params.value > 0"}},
        {"field": "failures", "headerName": "failures", "headerTooltip": "failure and warning events of the guest in "
         "the range", "type": "numericColumn",
         "cellClassRules": {"cell-bad": "params.value > 0"}},
    ]
    return views.grid("host-domains-grid", rows, columns, height_px=None if len(rows) <= 15 else 480,
                      row_class_rules={"row-failing": failing, "row-recovered": recovered})


@callback(Output("host-events", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          Input("url", "pathname"))
@views.guarded("the host's events")
def host_events(range_data, _tick, pathname):
    """Return the host's events in the range, newest first."""
    context, rng = views.page_range(range_data)
    host = host_from_path(pathname)
    unknown = _known(context, host)
    if unknown is not None:
        return unknown
    frame = data.events(context.store, rng, hosts=[host])
    if frame.empty:
        return views.empty_state(f"No events on {host} in the {rng.label}.")
    rows = data.event_rows(frame)
    return views.grid("host-events-grid", rows, views.event_columns(), height_px=None if len(rows) <= 15 else 420)



@callback(Output("host-why", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          Input("url", "pathname"))
@views.guarded("the host's diagnosis")
def why(range_data, _tick, pathname):
    """Return the Why panel: the newest diagnosis of the range, or the empty state saying there is none."""
    context, rng = views.page_range(range_data)
    host = host_from_path(pathname)
    unknown = _known(context, host)
    if unknown is not None:
        return unknown
    return forensics_view.why_panel(forensics_data.latest_diagnosis(context.store, host, rng), host, rng.label)


@callback(Output("host-forensics", "children"), Input("shell-range", "data"), Input("shell-refresh", "n_intervals"),
          Input("url", "pathname"))
@views.guarded("the host's forensics bundles")
def forensics(range_data, _tick, pathname):
    """Return the host's forensics records in the range, newest first, each linking to its bundle page."""
    context, rng = views.page_range(range_data)
    host = host_from_path(pathname)
    unknown = _known(context, host)
    if unknown is not None:
        return unknown
    records = forensics_data.forensics_records(context.store, host, rng)
    return forensics_view.forensics_list(records, _range_search(range_data), rng.label)


def _range_search(range_data: dict) -> str:
    """Return the query string of the shell's range (so a link out keeps it), "" for the default."""
    from dashboard import timerange as tr

    spec = tr.RangeSpec(range_data["range"], range_data.get("start", ""), range_data.get("end", ""),
                        range_data.get("refresh", tr.DEFAULT_REFRESH))
    return tr.build_search(spec.params())
