"""The fleet table's server side (dashboard.fleet_table): the grid's request checked, filters, sort order (worst
first by default), alarm thresholds, cells."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard import fleet_table
from dashboard.timerange import ParamError

HOSTS = ["hv-01", "hv-02", "hv-03", "hv-04", 'kvm "q", \\x ✓', "<b>bold</b>"]


def fleet(**columns) -> pd.DataFrame:
    """Return a fleet frame of HOSTS (as dashboard.data.fleet_frame builds it) with some columns set."""
    base = {"host": HOSTS, "status": ["up", "down", "hung", "up", "no data", "restarting"],
            "probe_latency_ms": [12.0, None, 5000.0, 40.0, None, 8.0], "workers_busy": [2.0, None, 20.0, 4.0, None, 1.0],
            "workers_max": [20.0, None, 20.0, 20.0, None, 20.0], "saturation_percent": [10.0, None, 100.0, 20.0, None, 5.0],
            "job_queue_depth": [0.0, None, 7.0, 0.0, None, 0.0], "failures": [0, 2, 1, 0, 0, 0],
            "last_failure": ["", "2026-01-02 03:04:05", "2026-01-02 03:00:00", "", "", ""],
            "last_failure_kind": ["", "daemon_down", "hang_start", "", "", ""],
            "last_seen": ["2026-01-02 04:00:00"] * 4 + ["2026-01-02 03:10:00", "2026-01-02 04:00:00"],
            "budget_0": [100.0, -40.0, -12.5, 88.0, None, 99.0],
            "worst_budget_percent": [100.0, -40.0, -12.5, 88.0, None, 99.0],
            "worst_budget_slo": ["availability"] * 4 + ["", "availability"],
            "alerts_firing": [0] * 6, "pages_firing": [0] * 6, "firing_names": [""] * 6,
            "fd_share_percent": [5.0, None, 30.0, 5.0, None, 5.0], "leak_sign": [""] * 6, "leak_detail": [""] * 6}
    base.update(columns)
    return fleet_table.prepared(pd.DataFrame(base))


def request(**fields) -> dict:
    """Return a getRowsRequest as the grid sends it."""
    return {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": {}, **fields}


def test_the_grid_request_gives_its_rows_sort_and_filters():
    wanted = fleet_table.parse_request(request(startRow=50, endRow=100, sortModel=[
        {"colId": "probe_latency_ms", "sort": "desc"}, {"colId": "host_link", "sort": "asc"}], filterModel={
        "status_label": {"filterType": "text", "type": "contains", "filter": "down"},
        "failures": {"filterType": "number", "type": "inRange", "filter": 1, "filterTo": 3}}), slo_count=1)
    assert (wanted.start, wanted.end) == (50, 100)
    assert wanted.sort == (("probe_latency_ms", True), ("host_link", False))
    assert [(f.field, f.kind, f.conditions) for f in wanted.filters] == [
        ("status_label", "text", (fleet_table.Condition("contains", "down"),)),
        ("failures", "number", (fleet_table.Condition("inRange", 1.0, 3.0),))]


def test_a_request_for_more_rows_than_a_page_or_two_gets_at_most_that():
    wanted = fleet_table.parse_request(request(startRow=0, endRow=10**6), slo_count=0)
    assert wanted.end - wanted.start == fleet_table.MAX_ROWS_PER_REQUEST


@pytest.mark.parametrize("bad, message", [
    ("rows please", "expected an object"),
    (request(startRow=-1), "startRow = '-1'"),
    (request(startRow="0; DROP"), "startRow = '0; DROP'"),
    (request(endRow=float("nan")), "endRow = 'nan'"),
    (request(startRow=True), "startRow = 'True'"),
    (request(startRow=60, endRow=50), "endRow = 50 must come after startRow = 60"),
    (request(sortModel=[{"colId": "password", "sort": "asc"}]), "'password': not a column"),
    (request(sortModel=[{"colId": "host_link", "sort": "sideways"}]), "expected asc or desc"),
    (request(sortModel="host"), "sort: expected a list"),
    (request(filterModel={"workers_max": {"filterType": "number", "type": "equals", "filter": 1}}),
     "'workers_max': not a column that filters"),
    (request(filterModel={"status_label": {"filterType": "text", "type": "regex", "filter": ".*"}}), "'regex'"),
    (request(filterModel={"failures": {"filterType": "number", "type": "equals", "filter": "1 OR 1=1"}}),
     "'1 OR 1=1': expected a number"),
    (request(filterModel={"status_label": {"filterType": "text", "type": "contains", "filter": "x" * 600}}),
     "too long (600 characters)"),
    (request(filterModel={"status_label": {"operator": "XOR", "conditions": []}}), "joined by AND or OR"),
], ids=["not-an-object", "negative-start", "text-start", "nan-end", "bool-start", "end-before-start",
        "unknown-sort-column", "bad-direction", "sort-not-a-list", "unfiltered-column", "unknown-filter-type",
        "text-number", "overlong-text", "bad-operator"])
def test_a_garbage_request_is_refused_with_what_is_wrong(bad, message):
    with pytest.raises(ParamError) as error:
        fleet_table.parse_request(bad, slo_count=1)
    assert message in str(error.value)


def test_the_default_order_is_worst_first_down_or_hung_then_pages_then_overspent_then_failures_then_by_name():
    frame = fleet(budget_0=[100.0, -40.0, -12.5, 88.0, None, -5.0],
                  worst_budget_percent=[100.0, -40.0, -12.5, 88.0, None, -5.0],
                  failures=[0, 2, 1, 0, 3, 0], alerts_firing=[2, 0, 1, 1, 0, 0], pages_firing=[0, 0, 1, 1, 0, 0],
                  firing_names=["BudgetBurn", "", "LibvirtdHung", "LibvirtdDown", "", ""])
    assert fleet_table.order(fleet_table.prepared(frame), ())["host"].tolist() == [
        "hv-02", "hv-03",          # down, then hung
        "hv-04",                   # a page firing (hv-01's ticket is not a page)
        "<b>bold</b>",             # its budget overspent
        'kvm "q", \\x ✓',          # failures in the range
        "hv-01"]                   # the rest by name


def test_among_hosts_over_budget_the_most_overspent_comes_first():
    frame = fleet(status=["up"] * 6, failures=[0] * 6, worst_budget_percent=[-1.0, -50.0, 3.0, -7.0, None, 0.0])
    assert fleet_table.order(fleet_table.prepared(frame), ())["host"].tolist()[:3] == ["hv-02", "hv-04", "hv-01"]


def test_a_column_sort_the_user_chose_wins_over_worst_first():
    ordered = fleet_table.order(fleet(), [("probe_latency_ms", True)])
    assert ordered["host"].tolist()[:2] == ["hv-03", "hv-04"]


def test_a_healthy_fleet_is_in_name_order():
    frame = fleet(status=["up"] * 6, failures=[0] * 6, worst_budget_percent=[50.0] * 6)
    assert fleet_table.order(fleet_table.prepared(frame), ())["host"].tolist() == sorted(HOSTS)


def test_a_job_queue_of_one_is_no_alarm_but_one_as_long_as_the_pool_is():
    frame = fleet(job_queue_depth=[1.0, None, 20.0, 19.0, None, 0.0])
    alarms = dict(zip(frame["host"], frame["queue_alarm"]))
    assert [alarms[host] for host in ("hv-01", "hv-02", "hv-03", "hv-04")] == [False, False, True, False]


def test_pool_use_and_descriptors_are_alarms_only_past_their_thresholds():
    from alerts.leaks import LeakPolicy

    share = 100 * LeakPolicy().fd_share
    frame = fleet(saturation_percent=[89.9, None, 90.0, 100.0, None, 50.0],
                  fd_share_percent=[share - 0.1, None, share, 99.0, None, 10.0])
    assert frame["saturation_alarm"].tolist() == [False, False, True, True, False, False]
    assert frame["fd_alarm"].tolist() == [False, False, True, True, False, False]
    cells = {cell["host"]: cell for cell in fleet_table.cells(frame, slo_count=1)}
    assert cells["hv-03"]["fd_alarm"] and cells["hv-03"]["saturation_alarm"] and not cells["hv-01"]["fd_alarm"]


def test_firing_alerts_read_as_pages_first_with_their_names():
    frame = fleet(alerts_firing=[2, 0, 1, 0, 0, 3], pages_firing=[1, 0, 0, 0, 0, 0],
                  firing_names=["LibvirtdHung, SloBurn", "", "SloBurn", "", "", "A, B"])
    firing = dict(zip(frame["host"], frame["firing"]))
    assert firing["hv-01"] == "✖ 1 page + 1: LibvirtdHung, SloBurn"
    assert firing["hv-03"] == "▲ 1 firing: SloBurn" and firing["hv-02"] == ""
    assert fleet_table.order(frame, [("firing", True)])["host"].tolist()[:3] == ["hv-01", "<b>bold</b>", "hv-03"]


def test_sorting_by_status_ranks_by_severity_and_breaks_ties_by_name():
    ordered = fleet_table.order(fleet(), [("status_label", True)])
    assert ordered["status"].tolist() == ["down", "hung", "no data", "restarting", "up", "up"]
    assert ordered["host"].tolist()[-2:] == ["hv-01", "hv-04"]


@pytest.mark.parametrize("descending", [True, False], ids=["descending", "ascending"])
def test_missing_figures_sort_last_either_way(descending):
    ordered = fleet_table.order(fleet(), [("probe_latency_ms", descending)])
    latencies = ordered["probe_latency_ms"].tolist()
    assert all(pd.isna(v) for v in latencies[-2:]) and not any(pd.isna(v) for v in latencies[:-2])
    assert latencies[:-2] == sorted(latencies[:-2], reverse=descending)


def test_sorting_by_last_failure_puts_hosts_without_one_last():
    ordered = fleet_table.order(fleet(), [("last_failure", True)])
    assert ordered["host"].tolist()[:2] == ["hv-02", "hv-03"]


def test_the_status_and_name_filters_combine():
    assert fleet_table.select(fleet(), ["up", "hung"], "HV-0")["host"].tolist() == ["hv-01", "hv-03", "hv-04"]
    assert fleet_table.select(fleet(), [], "✓")["host"].tolist() == ['kvm "q", \\x ✓']


def test_a_name_typed_as_the_agent_sent_it_finds_the_host_the_store_renamed():
    from tsdb.point import clean_name

    sent = "rack\\ 7"  # a backslash before a space: every store keeps it as ⧵ (tsdb.point.clean_name)
    frame = fleet(host=[*HOSTS[:-1], clean_name(sent)])
    assert fleet_table.select(frame, [], sent)["host"].tolist() == [clean_name(sent)]


@pytest.mark.parametrize("text", ["' OR 1=1 --", '"; DROP MEASUREMENT libvirtd; --', ".*", "hv-\\d", "%", "_"])
def test_filter_text_is_matched_as_plain_text(text):
    assert fleet_table.select(fleet(), [], text).empty


@pytest.mark.parametrize("model, hosts", [
    ({"status_label": {"filterType": "text", "type": "contains", "filter": "DOWN"}}, ["hv-02"]),
    ({"status_label": {"filterType": "text", "operator": "OR", "conditions": [
        {"filterType": "text", "type": "equals", "filter": "✖ down"},
        {"filterType": "text", "type": "endsWith", "filter": "hung"}]}}, ["hv-02", "hv-03"]),
    ({"last_failure_kind": {"filterType": "text", "type": "blank"}}, ["hv-01", "hv-04", 'kvm "q", \\x ✓',
                                                                      "<b>bold</b>"]),
    ({"probe_latency_ms": {"filterType": "number", "type": "greaterThan", "filter": 20}}, ["hv-03", "hv-04"]),
    ({"budget_0": {"filterType": "number", "type": "lessThan", "filter": 0}}, ["hv-02", "hv-03"]),
    ({"failures": {"filterType": "number", "type": "inRange", "filter": 2, "filterTo": 1}}, ["hv-02", "hv-03"]),
    ({"host_link": {"filterType": "text", "type": "startsWith", "filter": "<b>"}}, ["<b>bold</b>"]),
], ids=["text-contains-any-case", "text-or", "text-blank", "number-greater", "budget-overspent", "number-range",
        "host-markup"])
def test_column_filters_apply_to_every_host(model, hosts):
    wanted = fleet_table.parse_request(request(filterModel=model), slo_count=1)
    assert sorted(fleet_table.select(fleet(), filters=wanted.filters)["host"]) == sorted(hosts)


def test_cells_carry_names_as_data_and_links_that_name_exactly_that_host():
    from urllib.parse import unquote

    cells = fleet_table.cells(fleet_table.order(fleet(), ()), slo_count=1, link_search="?range=1h")
    by_host = {cell["host"]: cell for cell in cells}
    assert set(by_host) == set(HOSTS)
    hostile = by_host['kvm "q", \\x ✓']
    assert hostile["host_link"].startswith("[kvm \\\"q\\\"\\, \\\\x ✓](/host/")
    assert unquote(hostile["host_link"].rsplit("(/host/", 1)[1][:-len("?range=1h)")]) == 'kvm "q", \\x ✓'
    assert by_host["hv-03"]["workers"] == "20 / 20" and by_host["hv-02"]["workers"] == ""
    assert by_host["hv-02"]["probe_latency_ms"] is None and by_host["hv-02"]["budget_0"] == -40.0
    assert by_host["<b>bold</b>"]["status_label"] == "↻ restarting"
