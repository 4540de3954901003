"""The fleet table a page at a time: the grid's request checked, then filtered, sorted and cut on the server.

The fleet page's grid (AG Grid's infinite row model, paginated) asks for rows [startRow, endRow) with its sort
model and column filter model; `parse_request` checks that request (anything else is a ParamError naming what),
`prepared` adds the triage order and the alarms, `select` applies the page's status and host filters and the column
filters to every host of the fleet frame (dashboard.data.fleet_frame), `order` sorts all of them (worst first when
the user chose no sort: TRIAGE_TIERS), and `cells` turns the one page the browser sees into rows. Filter text is
matched here, in pandas, as data: it never reaches the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dashboard.timerange import MAX_NAME_CHARS, ParamError

if TYPE_CHECKING:
    import pandas as pd

#: rows on one page of the grid (and in one block the grid asks for)
PAGE_SIZE = 50
#: the most rows one request gets, whatever it asks for
MAX_ROWS_PER_REQUEST = 2 * PAGE_SIZE
#: the host statuses, best first: sorting the status column ascending puts healthy hosts first
STATUS_ORDER = ("up", "restarting", "no data", "hung", "down")
#: the most sort keys or column filters one request may hold
MAX_KEYS = 20
#: the default order, worst first: each host falls in the first tier it qualifies for, then the rest by name
TRIAGE_TIERS = ("down or hung", "pages firing", "over budget", "failures", "the rest")
#: alarm colours only past real thresholds (prepared() is the one place they apply): pool use at or past this
#: share of workers_max (a pool that full queues the next calls), a job queue as long as the pool itself
#: (job_queue_depth >= workers_max), open descriptors at or past fd_alarm_share() of their limit
SATURATION_ALARM_PERCENT = 90.0

#: the troubles a host can be shown for (the page's `show` URL parameter, the summary strip's links): each the
#: hosts of the prepared fleet frame that have it
SHOWS = {
    "paging": lambda frame: frame["pages_firing"] > 0,
    "firing": lambda frame: frame["alerts_firing"] > 0,
    "over-budget": lambda frame: frame["worst_budget_percent"] < 0,
    "fd-leak": lambda frame: frame["fd_leak"].astype(bool),
    "memory-growing": lambda frame: frame["rss_leak"].astype(bool),
    "failures": lambda frame: frame["failures"] > 0,
}


def fd_alarm_share() -> float:
    """Return the share of their limit from which open descriptors are alarm: the leak rule's own
    (alerts.leaks.LeakPolicy().fd_share)."""
    from alerts.leaks import LeakPolicy

    return LeakPolicy().fd_share

_TEXT_TYPES = ("contains", "notContains", "equals", "notEqual", "startsWith", "endsWith", "blank", "notBlank")
_NUMBER_TYPES = ("equals", "notEqual", "lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual",
                 "inRange", "blank", "notBlank")


@dataclass(frozen=True)
class Column:
    """A grid column as the server sees it: the frame column it sorts by, and how it filters (text, number or
    not at all)."""

    sort_by: str
    filter_kind: str | None = None
    filter_on: str | None = None


def columns(slo_count: int) -> dict[str, Column]:
    """Return {grid field: Column} for the fleet grid with `slo_count` budget columns."""
    table = {
        "host_link": Column("host", "text", "host"),
        "status_label": Column("status_rank", "text", "status_label"),
        "probe_latency_ms": Column("probe_latency_ms", "number"),
        "workers": Column("workers_busy", "number", "workers_busy"),
        "saturation_percent": Column("saturation_percent", "number"),
        "job_queue_depth": Column("job_queue_depth", "number"),
        "failures": Column("failures", "number"),
        "last_failure": Column("last_failure_key", "text", "last_failure"),
        "last_failure_kind": Column("last_failure_kind", "text"),
        "last_seen": Column("last_seen_key", "text", "last_seen"),
        "firing": Column("firing_rank", "text", "firing"),
        "worst_budget_percent": Column("worst_budget_percent", "number"),
        "leak_sign": Column("leak_rank", "text", "leak_sign"),
        "fd_share_percent": Column("fd_share_percent", "number"),
    }
    for index in range(slo_count):
        table[f"budget_{index}"] = Column(f"budget_{index}", "number")
    return table


@dataclass(frozen=True)
class Condition:
    """One column filter condition: its type (contains, greaterThan, ...) and value(s)."""

    type: str
    value: str | float | None = None
    value_to: float | None = None


@dataclass(frozen=True)
class ColumnFilter:
    """The filter of one column: conditions joined by AND or OR."""

    field: str
    kind: str
    conditions: tuple[Condition, ...]
    operator: str = "AND"


@dataclass(frozen=True)
class PageRequest:
    """What the grid asks for: rows [start, end), sorted by (field, descending) keys, filtered by columns."""

    start: int = 0
    end: int = PAGE_SIZE
    sort: tuple[tuple[str, bool], ...] = ()
    filters: tuple[ColumnFilter, ...] = ()


def parse_request(request: Any, slo_count: int) -> PageRequest:
    """Return the PageRequest of the grid's getRowsRequest; ParamError naming what is wrong with anything else.
    At most MAX_ROWS_PER_REQUEST rows are ever asked for."""
    if not isinstance(request, Mapping):
        raise ParamError("rows request: expected an object")
    start, end = request.get("startRow", 0), request.get("endRow", PAGE_SIZE)
    for name, value in (("startRow", start), ("endRow", end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < 0 or value != int(value) or value > 10**9:
            raise ParamError(f"rows request: {name} = {str(value)[:40]!r}: expected a whole number of rows")
    start, end = int(start), int(end)
    if end <= start:
        raise ParamError(f"rows request: endRow = {end} must come after startRow = {start}")
    known = columns(slo_count)
    return PageRequest(start, min(end, start + MAX_ROWS_PER_REQUEST),
                       _parse_sort(request.get("sortModel"), known), _parse_filters(request.get("filterModel"), known))


def _parse_sort(model: Any, known: Mapping[str, Column]) -> tuple[tuple[str, bool], ...]:
    """Return the sort model as (field, descending) pairs."""
    if model in (None, [], {}):
        return ()
    if not isinstance(model, list) or len(model) > MAX_KEYS:
        raise ParamError("sort: expected a list of at most 20 columns")
    keys = []
    for item in model:
        field = item.get("colId") if isinstance(item, Mapping) else None
        direction = item.get("sort") if isinstance(item, Mapping) else None
        if not isinstance(field, str) or field not in known:
            raise ParamError(f"sort: {str(field)[:60]!r}: not a column of the fleet table")
        if direction not in ("asc", "desc"):
            raise ParamError(f"sort {field}: {str(direction)[:20]!r}: expected asc or desc")
        keys.append((field, direction == "desc"))
    return tuple(keys)


def _parse_filters(model: Any, known: Mapping[str, Column]) -> tuple[ColumnFilter, ...]:
    """Return the column filter model as ColumnFilters (AG Grid's text and number filter models)."""
    if model in (None, {}, []):
        return ()
    if not isinstance(model, Mapping) or len(model) > MAX_KEYS:
        raise ParamError("filter: expected an object of at most 20 columns")
    filters = []
    for field, spec in model.items():
        column = known.get(field) if isinstance(field, str) else None
        if column is None or column.filter_kind is None:
            raise ParamError(f"filter: {str(field)[:60]!r}: not a column that filters")
        if not isinstance(spec, Mapping):
            raise ParamError(f"filter {field}: expected an object")
        if "conditions" in spec:
            parts, operator = spec.get("conditions"), spec.get("operator", "AND")
            if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_KEYS or operator not in ("AND", "OR"):
                raise ParamError(f"filter {field}: expected conditions joined by AND or OR")
        else:
            parts, operator = [spec], "AND"
        filters.append(ColumnFilter(field, column.filter_kind,
                                    tuple(_condition(field, column.filter_kind, part) for part in parts), operator))
    return tuple(filters)


def _condition(field: str, kind: str, spec: Any) -> Condition:
    """Return one condition of a column filter, checked."""
    if not isinstance(spec, Mapping):
        raise ParamError(f"filter {field}: expected an object")
    kind_given, kind_type = spec.get("filterType", kind), spec.get("type", "contains" if kind == "text" else "equals")
    types = _TEXT_TYPES if kind == "text" else _NUMBER_TYPES
    if kind_given != kind or kind_type not in types:
        raise ParamError(f"filter {field}: {str(kind_given)[:20]!r} {str(kind_type)[:20]!r}: expected a {kind} "
                         f"filter ({', '.join(types)})")
    if kind_type in ("blank", "notBlank"):
        return Condition(kind_type)
    if kind == "text":
        value = spec.get("filter")
        if not isinstance(value, str):
            raise ParamError(f"filter {field}: expected text to look for")
        if len(value) > MAX_NAME_CHARS:
            raise ParamError(f"filter {field} = {value[:60]!r}...: too long ({len(value)} characters)")
        return Condition(kind_type, value)
    numbers = [spec.get("filter"), spec.get("filterTo")] if kind_type == "inRange" else [spec.get("filter")]
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ParamError(f"filter {field}: {str(number)[:40]!r}: expected a number")
    return Condition(kind_type, float(numbers[0]), float(numbers[1]) if len(numbers) > 1 else None)


# ---- on the server, over every host ----

def prepared(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the fleet frame with the columns the table sorts and filters by (status label and rank, time keys,
    firing and leak text and ranks), its triage order (triage_tier: the index in TRIAGE_TIERS, triage_key: worst
    first within the tier) and its alarms (saturation_alarm, queue_alarm, fd_alarm)."""
    import numpy as np
    import pandas as pd

    from dashboard.views import status_label

    rank = {status: index for index, status in enumerate(STATUS_ORDER)}
    zeros = pd.Series(0, index=frame.index)
    blanks = pd.Series("", index=frame.index, dtype=object)
    missing = pd.Series(np.nan, index=frame.index)
    falses = pd.Series(False, index=frame.index)
    pages, alerts = frame.get("pages_firing", zeros), frame.get("alerts_firing", zeros)
    names = frame.get("firing_names", blanks)
    worst = frame.get("worst_budget_percent", missing).astype("float64")
    leak = frame.get("leak_sign", blanks)
    status_rank = frame["status"].map(rank).astype("float64")
    failing = frame["status"].isin(["down", "hung"]).to_numpy()
    tiers = [failing, (pages > 0).to_numpy(), (worst < 0).to_numpy(), (frame["failures"] > 0).to_numpy()]
    keys = [-status_rank.to_numpy(), -pages.to_numpy(dtype="float64"), worst.to_numpy(),
            -frame["failures"].to_numpy(dtype="float64")]
    fd_share = frame.get("fd_share_percent", missing).astype("float64")
    return frame.assign(
        status_label=frame["status"].map({s: status_label(s) for s in STATUS_ORDER}).fillna(frame["status"]),
        status_rank=status_rank,
        pages_firing=pages, alerts_firing=alerts, worst_budget_percent=worst,
        fd_leak=frame.get("fd_leak", falses).fillna(False).astype(bool),
        rss_leak=frame.get("rss_leak", falses).fillna(False).astype(bool),
        last_failure_key=frame["last_failure"].where(frame["last_failure"] != "", pd.NA),
        last_seen_key=frame["last_seen"].where(frame["last_seen"] != "", pd.NA),
        firing=[_firing_text(a, p, n) for a, p, n in zip(alerts, pages, names)],
        firing_rank=(1000.0 * pages + alerts).where(alerts > 0),
        leak_rank=(fd_share.fillna(0.0) + 1.0).where(leak != "", np.nan),
        triage_tier=np.select(tiers, range(len(tiers)), len(tiers)),
        triage_key=np.select(tiers, keys, 0.0),
        saturation_alarm=frame["saturation_percent"] >= SATURATION_ALARM_PERCENT,
        queue_alarm=(frame["workers_max"] > 0) & (frame["job_queue_depth"] >= frame["workers_max"]),
        fd_alarm=fd_share >= 100.0 * fd_alarm_share(),
    )


def _firing_text(alerts: int, pages: int, names: str) -> str:
    """Return a host's firing alerts as a cell: "✖ 1 page: LibvirtdHung", "▲ 2 firing: A, B", or ""."""
    if not alerts:
        return ""
    if pages:
        return f"✖ {pages} page{'s' if pages > 1 else ''}" + (f" + {alerts - pages}" if alerts > pages else "") \
            + f": {names}"
    return f"▲ {alerts} firing: {names}"


def select(frame: pd.DataFrame, statuses: Sequence[str] = (), text: str = "",
           filters: Sequence[ColumnFilter] = (), shows: Sequence[str] = ()) -> pd.DataFrame:
    """Return the hosts whose status is one of `statuses` (all when empty), whose name holds `text` (ignoring
    case; also as the store would have stored it, see tsdb.point.clean_name), that have every trouble of `shows`
    (SHOWS) and that pass every column filter."""
    import numpy as np

    from tsdb.point import clean_name

    keep = np.ones(len(frame), dtype=bool)
    if statuses:
        keep &= frame["status"].isin(list(statuses)).to_numpy()
    for show in shows:
        keep &= SHOWS[show](frame).fillna(False).to_numpy(dtype=bool)
    needle = text.strip()
    if needle:
        names = frame["host"].str.casefold()
        found = names.str.contains(needle.casefold(), regex=False)
        stored = clean_name(needle)
        if stored != needle:
            found |= names.str.contains(stored.casefold(), regex=False)
        keep &= found.to_numpy()
    known = columns(sum(1 for name in frame.columns if name.startswith("budget_")))
    for one in filters:
        keep &= _matches(frame[known[one.field].filter_on or one.field], one).to_numpy()
    return frame[keep]


def _matches(values: pd.Series, one: ColumnFilter) -> pd.Series:
    """Return which values pass a column filter."""
    import functools
    import operator

    masks = [_text_mask(values, c) if one.kind == "text" else _number_mask(values, c) for c in one.conditions]
    return functools.reduce(operator.or_ if one.operator == "OR" else operator.and_, masks)


def _text_mask(values: pd.Series, condition: Condition) -> pd.Series:
    """Return which values pass one text condition (ignoring case, as AG Grid's own text filter does)."""
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if condition.type == "blank":
        return blank
    if condition.type == "notBlank":
        return ~blank
    text = values.fillna("").astype(str).str.casefold()
    needle = str(condition.value).casefold()
    tests = {"contains": lambda: text.str.contains(needle, regex=False),
             "notContains": lambda: ~text.str.contains(needle, regex=False),
             "equals": lambda: text == needle, "notEqual": lambda: text != needle,
             "startsWith": lambda: text.str.startswith(needle), "endsWith": lambda: text.str.endswith(needle)}
    return tests[condition.type]()


def _number_mask(values: pd.Series, condition: Condition) -> pd.Series:
    """Return which values pass one number condition (a missing value passes only `blank` and `notEqual`)."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    if condition.type == "blank":
        return numbers.isna()
    if condition.type == "notBlank":
        return numbers.notna()
    value, upper = condition.value, condition.value_to
    tests = {"equals": lambda: numbers == value, "notEqual": lambda: numbers != value,
             "lessThan": lambda: numbers < value, "lessThanOrEqual": lambda: numbers <= value,
             "greaterThan": lambda: numbers > value, "greaterThanOrEqual": lambda: numbers >= value,
             "inRange": lambda: (numbers >= min(value, upper)) & (numbers <= max(value, upper))}
    return tests[condition.type]()


def order(frame: pd.DataFrame, sort: Sequence[tuple[str, bool]]) -> pd.DataFrame:
    """Return the hosts sorted by the sort keys (missing values last either way), then by name; worst first when
    there are none (TRIAGE_TIERS, worst first within each tier, then by name)."""
    known = columns(sum(1 for name in frame.columns if name.startswith("budget_")))
    if not sort and "triage_tier" in frame:
        return frame.sort_values(["triage_tier", "triage_key", "host"], kind="mergesort", na_position="last")
    keys: list[str] = []
    ascending: list[bool] = []
    for field, descending in sort:
        column = known[field].sort_by
        if column not in keys:
            keys.append(column)
            ascending.append(not descending)
    if "host" not in keys:
        keys.append("host")
        ascending.append(True)
    return frame.sort_values(keys, ascending=ascending, kind="mergesort", na_position="last")


def cells(page: pd.DataFrame, slo_count: int, link_search: str = "") -> list[dict]:
    """Return the rows the browser gets for one page of hosts: the grid's fields, None where a figure is missing."""
    from dashboard.views import host_href, markdown_escape

    rows = []
    for row in page.to_dict("records"):
        host = row["host"]
        busy, most = _number(row["workers_busy"]), _number(row["workers_max"])
        out = {
            "host": host,
            "host_link": f"[{markdown_escape(host)}]({host_href(host, link_search)})",
            "status": row["status"], "status_label": row["status_label"],
            "probe_latency_ms": _number(row["probe_latency_ms"]),
            "workers": f"{busy:.0f} / {most:.0f}" if busy is not None and most is not None else "",
            "saturation_percent": _number(row["saturation_percent"]),
            "job_queue_depth": _number(row["job_queue_depth"]),
            "failures": int(row["failures"]),
            "last_failure": row["last_failure"], "last_failure_kind": row["last_failure_kind"],
            "last_seen": row["last_seen"],
            "firing": row.get("firing", ""),
            "worst_budget_percent": _number(row.get("worst_budget_percent")),
            "worst_budget_slo": row.get("worst_budget_slo") or "",
            "leak_sign": row.get("leak_sign") or "", "leak_detail": row.get("leak_detail") or "",
            "fd_share_percent": _number(row.get("fd_share_percent")),
            "open_fds": _number(row.get("open_fds")), "max_fds": _number(row.get("max_fds")),
            "saturation_alarm": bool(row.get("saturation_alarm")), "queue_alarm": bool(row.get("queue_alarm")),
            "fd_alarm": bool(row.get("fd_alarm")),
        }
        for index in range(slo_count):
            out[f"budget_{index}"] = _number(row.get(f"budget_{index}"))
        rows.append(out)
    return rows


def _number(value: Any) -> float | None:
    """Return a figure for a cell: None when missing or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
