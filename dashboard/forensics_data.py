"""The reads behind "why did libvirtd fail": a host's newest diagnosis, its forensics records, one bundle.

Like dashboard.data, every read goes through tsdb's query interface and names (hosts) are only `where` values.
The `diagnosis` and `forensics` measurements are described in tsdb.schema; a bundle's stored form in
tsdb.forensics. A forensics record is addressed by (host, time in ns): the alert engine's notifications link to
`/forensics?host=...&time=...`, and the host page's list links the same way.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from dashboard.timerange import TimeRange
from tsdb.point import clean_name

if TYPE_CHECKING:
    import pandas as pd

    from tsdb.store import Store

DIAGNOSIS_TAGS = ("host", "trigger")
DIAGNOSIS_TEXT_FIELDS = ("cause", "process_state", "threads_not_sleeping", "top_client", "clients_by_process", "job_domain",
                         "job_waiting_api", "job_holder_api", "stuck_guest_names_json")
DIAGNOSIS_NUMBER_FIELDS = ("hang_seconds", "threads", "threads_running", "threads_disk_wait",
                           "threads_stopped", "workers_busy", "workers_max", "workers_priority", "job_queue_depth",
                           "pool_age_seconds", "clients_listed", "top_client_connections", "agent_connections",
                           "job_holder_thread", "job_held_by_agent", "job_age_seconds", "stuck_guests")
DIAGNOSIS_FIELDS = DIAGNOSIS_TEXT_FIELDS + DIAGNOSIS_NUMBER_FIELDS
FORENSICS_TAGS = ("host", "trigger")
#: the fields a forensics list shows; `bundle` (up to 60 KB each) is read only for the one record opened
FORENSICS_LIST_FIELDS = ("cause", "size_bytes", "capture_ms", "steps_cut", "encoding", "file")
FORENSICS_TEXT_FIELDS = ("cause", "steps_cut", "encoding", "file")
#: the most forensics records a list shows (the newest); the agent captures at most one per incident
FORENSICS_SHOWN_MAX = 200
#: an exact-time read looks this far either side of the asked time, then keeps only the row at that time
EXACT_READ_SLACK_NS = 10**9
#: forensics records never change once written, so the few opened last are kept per process
_RECORD_CACHE_MAX = 16

_cache_lock = threading.Lock()
_record_cache: OrderedDict[tuple, dict[str, Any]] = OrderedDict()


def latest_diagnosis(store: Store, host: str, rng: TimeRange) -> dict[str, Any] | None:
    """Return the host's newest diagnosis in the range (time, trigger, its fields, stuck guest names), or None."""
    frame = store.latest("diagnosis", list(DIAGNOSIS_FIELDS), rng.start_ns, rng.end_ns - 1, where={"host": host},
                         group_by=list(DIAGNOSIS_TAGS))
    if frame.empty:
        return None
    row = frame.sort_values("time", kind="mergesort").iloc[-1]
    found: dict[str, Any] = {"time": row["time"], "time_ns": int(row["time"].value), "host": row["host"],
                             "trigger": row["trigger"]}
    found.update({name: _text(row[name]) for name in DIAGNOSIS_TEXT_FIELDS})
    found.update({name: _number(row[name]) for name in DIAGNOSIS_NUMBER_FIELDS})
    found["stuck_guest_names"] = stuck_guest_names(found["stuck_guest_names_json"])
    return found


def stuck_guest_names(text: str) -> list[str]:
    """Return the guest names of a `stuck_guest_names_json` field; text that is not a JSON list is one name."""
    if not text:
        return []
    try:
        names = json.loads(text)
    except ValueError:
        return [text]
    if not isinstance(names, list):
        return [text]
    return [name if isinstance(name, str) else json.dumps(name, ensure_ascii=False) for name in names]


def forensics_records(store: Store, host: str, rng: TimeRange, limit: int = FORENSICS_SHOWN_MAX) -> list[dict]:
    """Return the host's forensics records in the range without their bundles, newest first, at most `limit`."""
    frame = store.query("forensics", list(FORENSICS_LIST_FIELDS), rng.start_ns, rng.end_ns, where={"host": host},
                        group_by=list(FORENSICS_TAGS))
    frame = frame.sort_values("time", ascending=False, kind="mergesort").head(limit)
    return [_record(row) for _, row in frame.iterrows()]


def forensics_record(store: Store, host: str, time_ns: int) -> dict[str, Any] | None:
    """Return the host's forensics record stored at exactly `time_ns` (bundle still encoded), or None."""
    key = (store.display_url, clean_name(host), time_ns)  # the URL, never id(store): ids are reused
    with _cache_lock:
        if key in _record_cache:
            _record_cache.move_to_end(key)
            return _record_cache[key]
    from tsdb.query import MAX_TIME_NS, MIN_TIME_NS

    start = max(MIN_TIME_NS, time_ns - EXACT_READ_SLACK_NS)
    end = min(MAX_TIME_NS, time_ns + EXACT_READ_SLACK_NS)
    frame = store.query("forensics", [*FORENSICS_LIST_FIELDS, "bundle"], start, end, where={"host": host},
                        group_by=list(FORENSICS_TAGS))
    if frame.empty:
        return None
    exact = frame[(frame["time"].astype("int64") == time_ns) & (frame["host"] == clean_name(host))]
    if exact.empty:
        return None
    row = exact.iloc[0]
    record = {**_record(row), "bundle": _text(row["bundle"])}
    with _cache_lock:
        _record_cache[key] = record
        while len(_record_cache) > _RECORD_CACHE_MAX:
            _record_cache.popitem(last=False)
    return record


def forensics_hosts(store: Store) -> list[str]:
    """Return every host that has forensics records."""
    return store.tag_values("forensics", "host")


def clear_cache() -> None:
    """Forget the forensics records kept by forensics_record (tests)."""
    with _cache_lock:
        _record_cache.clear()


def _record(row: pd.Series) -> dict[str, Any]:
    """Return a forensics frame row as a record: time, host, trigger and the list's fields."""
    record: dict[str, Any] = {"time": row["time"], "time_ns": int(row["time"].value), "host": row["host"],
                              "trigger": row["trigger"]}
    for name in FORENSICS_LIST_FIELDS:
        record[name] = _text(row[name]) if name in FORENSICS_TEXT_FIELDS else _number(row[name])
    return record


def _text(value: Any) -> str:
    """Return a string field's value, "" when missing."""
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    """Return a numeric field's value as a float, None when missing or not a number."""
    import math

    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value
