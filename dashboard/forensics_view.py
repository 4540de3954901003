"""The pieces that say why libvirtd failed, no callbacks: the host page's Why panel and Forensics list, and the
bundle page (`/forensics?host=<host>&time=<ns>`, the address the alert engine's notifications link to).

    diagnosis = forensics_data.latest_diagnosis(store, host, rng)
    why_panel(diagnosis, host, rng.label)
    forensics_list(forensics_data.forensics_records(store, host, rng), search)
    bundle_view(store, params)                       # the bundle page's body, from its URL parameters

Every name (host, guest, client) and the bundle's text are shown as text, never as HTML or markdown.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dash import dcc, html

from dashboard import forensics_data, views
from dashboard.timerange import SHELL_PARAMS, ParamError, build_search, text_param
from tsdb.point import clean_name
from tsdb.query import MAX_TIME_NS

PATH = "/forensics"
#: a time in the URL is whole nanoseconds since the epoch: at most 19 digits
MAX_TIME_DIGITS = 19
TRIGGER_WORDS = {"hang_start": "▲ hang started", "hang": "‖ hang", "segfault": "✖ segfault",
                 "restart": "↻ restart", "manual": "● manual"}
MISSING = "—"


def forensics_href(host: str, time_ns: int, search: str = "") -> str:
    """Return the bundle page's address of the host's record at time_ns, keeping the shell's range from `search`."""
    from dashboard.timerange import parse_search

    keep = {key: value for key, value in parse_search(search).items() if key in SHELL_PARAMS}
    return f"{PATH}?" + urlencode({"host": host, "time": str(time_ns), **keep}, doseq=True)


def format_ns(time_ns: int) -> str:
    """Return nanoseconds since the epoch as UTC text to the second: 2024-05-01 12:00:05 UTC."""
    moment = dt.datetime.fromtimestamp(time_ns // 10**9, tz=dt.timezone.utc)
    return f"{moment:{views.TIME_FORMAT}} UTC"


def size_words(size_bytes: float | None) -> str:
    """Return a byte count as text: 812 B, 71.3 KiB, 1.2 MiB."""
    if size_bytes is None:
        return MISSING
    if size_bytes < 1024:
        return f"{size_bytes:.0f} B"
    if size_bytes < 1024**2:
        return f"{size_bytes / 1024:.1f} KiB"
    return f"{size_bytes / 1024**2:.1f} MiB"


def seconds_words(seconds: float | None) -> str:
    """Return a duration as text: 45 s, 12 min 5 s, 2 h 3 min."""
    if seconds is None:
        return MISSING
    whole = int(round(seconds))
    if whole < 60:
        return f"{seconds:.0f} s" if seconds >= 10 or seconds == whole else f"{seconds:.1f} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s" if whole % 60 else f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def trigger_words(trigger: str) -> str:
    """Return a trigger as a word with its symbol: "✖ segfault"."""
    return TRIGGER_WORDS.get(trigger, trigger or MISSING)


def _count(value: float | None) -> str:
    """Return a count as text, — when missing."""
    return MISSING if value is None else f"{value:.0f}"


# ---- the host page ----

def diagnosis_facts(diagnosis: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Return the Why panel's rows (label, text or component): pool, queue, top client, job holder, stuck guests,
    process and threads."""
    d = diagnosis
    workers = (f"{_count(d['workers_busy'])} of {_count(d['workers_max'])} busy"
               if d["workers_busy"] is not None or d["workers_max"] is not None else MISSING)
    queue = MISSING if d["job_queue_depth"] is None else f"{d['job_queue_depth']:.0f} calls waiting"
    client = MISSING
    if d["top_client"]:
        client = d["top_client"] + (f" · {d['top_client_connections']:.0f} connections"
                                    if d["top_client_connections"] is not None else "")
    holder: Any = MISSING
    if d["job_domain"] or d["job_holder_api"] or d["job_holder_thread"] is not None:
        parts = [html.Span(["guest ", html.Code(d["job_domain"] or "?", className="name")])]
        if d["job_holder_api"]:
            parts.append(html.Span([" · held by ", html.Code(d["job_holder_api"])]))
        if d["job_holder_thread"] is not None:
            parts.append(f" · thread {d['job_holder_thread']:.0f}")
        if d["job_age_seconds"] is not None:
            parts.append(f" · for {seconds_words(d['job_age_seconds'])}")
        if d["job_waiting_api"]:
            parts.append(html.Span([" · ", html.Code(d["job_waiting_api"]), " waits for it"]))
        holder = html.Span(parts)
    names = d["stuck_guest_names"]
    stuck: Any = MISSING
    if names or d["stuck_guests"]:
        stuck = html.Span([f"{_count(d['stuck_guests']) if d['stuck_guests'] is not None else len(names)}"
                           + (": " if names else ""),
                           *[html.Code(name, className="name stuck-guest") for name in names]],
                          className="stuck-guests")
    threads = MISSING
    if d["threads_not_sleeping"] or d["threads"] is not None:
        total = f" (of {d['threads']:.0f})" if d["threads"] is not None else ""
        threads = (d["threads_not_sleeping"] or "none") + total
    return [("workers", workers), ("job queue", queue), ("top client", client), ("job lock holder", holder),
            ("stuck guests", stuck), ("process state", d["process_state"] or MISSING),
            ("threads not sleeping", threads)]


def why_panel(diagnosis: Mapping[str, Any] | None, host: str, range_label: str) -> html.Div:
    """Return the Why panel: the newest diagnosis's cause sentence, its time and trigger, and its figures."""
    if diagnosis is None:
        return views.empty_state(f"No hang, segfault or restart diagnosed on {host} in the {range_label}.",
                                 "The agent writes a diagnosis with every hang, segfault and restart of libvirtd.")
    meta = [html.Span(trigger_words(diagnosis["trigger"]), className=f"chip trigger-{diagnosis['trigger']}"),
            html.Span(format_ns(diagnosis["time_ns"]), className="why-time")]
    if diagnosis["hang_seconds"]:
        meta.append(html.Span(f"hung {seconds_words(diagnosis['hang_seconds'])}", className="why-time"))
    rows = [html.Tr([html.Th(label, scope="row"), html.Td(value)]) for label, value in diagnosis_facts(diagnosis)]
    return html.Div([
        html.P(diagnosis["cause"] or "(the diagnosis carries no cause sentence)", id="host-why-cause",
               className="why-cause"),
        html.Div(meta, className="why-meta"),
        html.Table(html.Tbody(rows), className="plain-table fact-table", id="host-why-facts"),
    ], className="why-panel")


def forensics_list(records: list[dict], search: str = "", range_label: str = "range") -> Any:
    """Return the host's forensics records as a table, newest first, each time a link to its bundle page."""
    if not records:
        return views.empty_state(f"No forensics bundle captured in the {range_label}.",
                                 "The agent captures one when a hang lasts, at a segfault or restart, and on "
                                 "`virtwatch diagnose`.")
    header = html.Tr([html.Th(h) for h in ("time (UTC)", "trigger", "cause", "size", "capture", "steps cut")])
    body = []
    for record in records:
        href = forensics_href(record["host"], record["time_ns"], search)
        body.append(html.Tr([
            html.Td(dcc.Link(f"{record['time']:{views.TIME_FORMAT}}", href=href, className="forensics-link"),
                    className="nowrap"),
            html.Td(trigger_words(record["trigger"]), className="nowrap"),
            html.Td(record["cause"] or MISSING, className="cause-cell"),
            html.Td(size_words(record["size_bytes"]), className="nowrap num"),
            html.Td(MISSING if record["capture_ms"] is None else f"{record['capture_ms']:.0f} ms",
                    className="nowrap num"),
            html.Td(record["steps_cut"] or "none", className="cell-warn" if record["steps_cut"] else ""),
        ], className="forensics-row", **{"data-time-ns": str(record["time_ns"])}))
    return html.Div(html.Table([html.Thead(header), html.Tbody(body)], className="plain-table forensics-table",
                               id="host-forensics-table"), className="table-scroll")


# ---- the bundle page ----

def bundle_address(params: Mapping) -> tuple[str, int]:
    """Return (host, time in ns) from the bundle page's URL parameters; ParamError saying what is wrong."""
    host = text_param(params, "host")
    if not host:
        raise ParamError("host: missing; expected host=<host>&time=<nanoseconds since the epoch>")
    time_text = text_param(params, "time").strip()
    if not time_text:
        raise ParamError("time: missing; expected host=<host>&time=<nanoseconds since the epoch>")
    if not time_text.isascii() or not time_text.isdigit() or len(time_text) > MAX_TIME_DIGITS:
        raise ParamError(f"time = {time_text[:40]!r}: expected a whole number of nanoseconds since the epoch")
    time_ns = int(time_text)
    if time_ns > MAX_TIME_NS:
        raise ParamError(f"time = {time_text!r}: later than any time a store holds")
    return host, time_ns


def bundle_filename(host: str, time_ns: int) -> str:
    """Return the download's file name: virtwatch-forensics-<host, safe characters only>-<time>.json."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in host)[:80]
    return f"virtwatch-forensics-{safe}-{time_ns}.json"


def bundle_json(store, host: str, time_ns: int) -> str | None:
    """Return the decoded bundle of the host's record at time_ns as indented JSON, None when there is none."""
    from tsdb.forensics import BundleError, decode_bundle

    record = forensics_data.forensics_record(store, host, time_ns)
    if record is None:
        return None
    try:
        bundle = decode_bundle(record["bundle"], record["encoding"] or "json")
    except BundleError:
        return None
    return json.dumps(bundle, ensure_ascii=False, indent=2)


def _header(record: Mapping[str, Any]) -> html.Table:
    """Return the bundle's header: host, trigger, time, cause, capture time, size, steps cut, file."""
    stored = "" if record["encoding"] in ("", "json") else f" (stored as {record['encoding']})"
    rows = [("host", html.Code(record["host"], className="name")),
            ("trigger", trigger_words(record["trigger"])),
            ("time", f"{format_ns(record['time_ns'])} · {record['time_ns']} ns"),
            ("cause", html.Span(record["cause"] or MISSING, className="why-cause-inline")),
            ("capture", MISSING if record["capture_ms"] is None else f"{record['capture_ms']:.0f} ms"),
            ("size", size_words(record["size_bytes"]) + stored),
            ("steps cut", record["steps_cut"] or "none (every step finished)"),
            ("file on the host", html.Code(record["file"]) if record["file"] else MISSING)]
    return html.Table(html.Tbody([html.Tr([html.Th(label, scope="row"), html.Td(value)]) for label, value in rows]),
                      className="plain-table fact-table", id="forensics-header")


def bundle_view(store, params: Mapping) -> list:
    """Return the bundle page's body for its URL parameters: header, download, the bundle as text; or an empty
    state saying what is wrong (no traceback for any address)."""
    from tsdb.forensics import BundleError, decode_bundle, render_bundle

    back_search = build_search({key: value for key, value in params.items() if key in SHELL_PARAMS
                                and isinstance(value, str)})
    try:
        host, time_ns = bundle_address(params)
    except ParamError as error:
        return [views.empty_state(f"Nothing to show: {error}", "Open a bundle from a host page's Forensics list or "
                                  "from an alert's link.", kind="bad-input")]
    back = dcc.Link(["← ", html.Span(host, className="name"), " (host page)"],
                    href=views.host_href(host, back_search), className="button", id="forensics-back")
    record = forensics_data.forensics_record(store, host, time_ns)
    if record is None:
        if clean_name(host) in forensics_data.forensics_hosts(store):
            message = f"No forensics bundle of {host[:200]!r} at {format_ns(time_ns)} ({time_ns} ns)."
            detail = "The address names a time no bundle was captured at; pick one from the host page's list."
        else:  # no host page to go back to either
            message = f"No forensics bundles of a host named {host[:200]!r} in the store."
            detail = "Check the name, or open a bundle from a host page's Forensics list."
            back = dcc.Link("← the fleet", href="/" + back_search, className="button", id="forensics-back")
        return [views.empty_state(message, detail, kind="bad-input"), back]
    header = _header(record)
    try:
        bundle = decode_bundle(record["bundle"], record["encoding"] or "json")
        text = render_bundle(bundle)
    except (BundleError, AttributeError, TypeError, ValueError) as error:  # a bundle of the wrong shape
        return [header, views.empty_state(f"This bundle could not be read: {error}",
                                          "The record's fields above are all there is.", kind="error"), back]
    actions = html.Div([back, html.Button("↓ Download JSON", id="forensics-download-button", className="button",
                                          n_clicks=0),
                        dcc.Download(id="forensics-download")], className="forensics-actions")
    return [header, actions, html.H2("The bundle"), bundle_text(text)]


def bundle_text(text: str) -> html.Pre:
    """Return a bundle's text as a preformatted block, one element per line so a wrapped line hangs indented."""
    lines = text.rstrip("\n").split("\n")
    return html.Pre([html.Span(line, className="bundle-line") for line in lines], id="forensics-bundle-text",
                    className="bundle-text")
