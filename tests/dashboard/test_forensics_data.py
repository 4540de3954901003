"""The readers of diagnoses and forensics records against real stores (InfluxDB 1.6 and DuckDB) holding the
planted fleet's failure evidence (tests/dashboard/planted_forensics.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from planted import HOSTILE_HOST, to_ns
from planted_forensics import (CORRUPT_HOST, HANG_MINUTES, HOSTILE_GUEST, HUNG_HOST, MANUAL_CAUSE, SEGFAULT_CAUSE,
                               SEGFAULT_HOST, bundle, forensics_point, hang_bundle_time, hang_cause,
                               manual_bundle_time, segfault_bundle_time)

from dashboard import forensics_data as fd
from dashboard.timerange import TimeRange
from tsdb.forensics import JSON, MAX_STORED_BYTES, ZLIB_BASE64, decode_bundle

pytestmark = pytest.mark.influxdb
MINUTE_NS = 60 * 10**9


@pytest.fixture(autouse=True)
def no_kept_records():
    """Start and end every test with no forensics record kept from another store."""
    fd.clear_cache()
    yield
    fd.clear_cache()


def planted_range(now: dt.datetime, hours: int = 3, minutes_before_now: int = 0) -> TimeRange:
    """Return the `hours` before the planted data's end (moved back by `minutes_before_now`)."""
    end = to_ns(now) - minutes_before_now * MINUTE_NS
    return TimeRange(end - hours * 3600 * 10**9, end, f"last {hours} hours")


def test_the_newest_diagnosis_of_a_hung_host_is_the_last_interval_of_its_hang(planted_store, fixed_now):
    found = fd.latest_diagnosis(planted_store, HUNG_HOST, planted_range(fixed_now))
    assert found["trigger"] == "hang"
    assert found["time_ns"] == to_ns(fixed_now) - MINUTE_NS
    assert found["hang_seconds"] == (HANG_MINUTES - 1) * 60
    assert found["cause"] == hang_cause((HANG_MINUTES - 1) * 60)
    assert (found["workers_busy"], found["workers_max"], found["job_queue_depth"]) == (20, 20, 7)
    assert (found["top_client"], found["top_client_connections"]) == ("memstat-poller (pid 4242)", 14)
    assert (found["job_domain"], found["job_holder_api"], found["job_holder_thread"]) == (
        HOSTILE_GUEST, "remoteDispatchDomainBlockJobAbort", 4712)
    assert found["stuck_guest_names"] == [HOSTILE_GUEST]


def test_a_range_that_ends_inside_the_hang_reads_the_diagnosis_of_that_moment(planted_store, fixed_now):
    found = fd.latest_diagnosis(planted_store, HUNG_HOST, planted_range(fixed_now, 1, minutes_before_now=20))
    assert found["hang_seconds"] == 9 * 60  # ten minutes into the hang is the range's end, which it excludes
    found = fd.latest_diagnosis(planted_store, HUNG_HOST, planted_range(fixed_now, 1, minutes_before_now=29))
    assert found["trigger"] == "hang_start"


def test_a_range_before_any_failure_has_no_diagnosis(planted_store, fixed_now):
    assert fd.latest_diagnosis(planted_store, HUNG_HOST, planted_range(fixed_now, 1, minutes_before_now=31)) is None
    assert fd.latest_diagnosis(planted_store, "kvm-up-01", planted_range(fixed_now)) is None


def test_a_restart_after_a_segfault_is_the_newest_diagnosis(planted_store, fixed_now):
    found = fd.latest_diagnosis(planted_store, SEGFAULT_HOST, planted_range(fixed_now))
    assert (found["trigger"], found["cause"]) == ("restart", SEGFAULT_CAUSE)
    assert found["stuck_guest_names"] == [] and found["job_holder_api"] == "" and found["top_client"] == ""


def test_forensics_records_are_listed_newest_first_without_their_bundles(planted_store, fixed_now):
    now_ns = to_ns(fixed_now)
    later = bundle(SEGFAULT_HOST, "restart", segfault_bundle_time(now_ns) + 3 * 10**9, "restarted")
    planted_store.write([forensics_point(later)])
    records = fd.forensics_records(planted_store, SEGFAULT_HOST, planted_range(fixed_now))
    assert [(r["trigger"], r["time_ns"]) for r in records] == [
        ("restart", segfault_bundle_time(now_ns) + 3 * 10**9), ("segfault", segfault_bundle_time(now_ns))]
    assert records[1]["cause"] == SEGFAULT_CAUSE and records[1]["capture_ms"] == 96.0
    assert records[1]["encoding"] == JSON and records[1]["steps_cut"] == ""
    assert all("bundle" not in record for record in records)
    assert fd.forensics_records(planted_store, SEGFAULT_HOST, planted_range(fixed_now), limit=1)[0]["trigger"] == \
        "restart"


def test_a_bundle_over_the_string_limit_is_stored_compressed_and_read_back_whole(planted_store, fixed_now):
    time_ns = hang_bundle_time(to_ns(fixed_now))
    record = fd.forensics_record(planted_store, HUNG_HOST, time_ns)
    assert record["encoding"] == ZLIB_BASE64 and record["size_bytes"] > MAX_STORED_BYTES
    assert record["steps_cut"] == "gdb"
    read = decode_bundle(record["bundle"], record["encoding"])
    assert read == json.loads(json.dumps(bundle(HUNG_HOST, "hang", time_ns, hang_cause(60), log_lines=400)))
    assert read["qemu"][0]["domain"] == HOSTILE_GUEST


def test_a_record_is_read_at_its_exact_nanosecond_and_not_at_a_neighbour(planted_store, fixed_now):
    time_ns = segfault_bundle_time(to_ns(fixed_now))
    near = bundle(SEGFAULT_HOST, "manual", time_ns + 1, "a second later, by hand")
    planted_store.write([forensics_point(near)])
    assert fd.forensics_record(planted_store, SEGFAULT_HOST, time_ns)["cause"] == SEGFAULT_CAUSE
    assert fd.forensics_record(planted_store, SEGFAULT_HOST, time_ns + 1)["trigger"] == "manual"
    assert fd.forensics_record(planted_store, SEGFAULT_HOST, time_ns - 1) is None
    assert fd.forensics_record(planted_store, HUNG_HOST, time_ns) is None  # another host's time


def test_a_hostile_host_name_reads_exactly_its_own_records(planted_store, fixed_now):
    time_ns = manual_bundle_time(to_ns(fixed_now))
    record = fd.forensics_record(planted_store, HOSTILE_HOST, time_ns)
    assert (record["host"], record["cause"]) == (HOSTILE_HOST, MANUAL_CAUSE)
    records = fd.forensics_records(planted_store, HOSTILE_HOST, planted_range(fixed_now))
    assert [r["time_ns"] for r in records] == [time_ns]
    assert fd.forensics_records(planted_store, '"; DROP MEASUREMENT forensics; --', planted_range(fixed_now)) == []
    assert set(fd.forensics_hosts(planted_store)) == {HUNG_HOST, SEGFAULT_HOST, CORRUPT_HOST, HOSTILE_HOST}


def test_a_record_far_outside_the_store_times_is_simply_not_found(planted_store):
    assert fd.forensics_record(planted_store, HUNG_HOST, 0) is None
    assert fd.forensics_record(planted_store, HUNG_HOST, 2**63 - 2) is None


@pytest.mark.parametrize("text, names", [
    ("", []),
    ("[]", []),
    (json.dumps([HOSTILE_GUEST, "db-2"], ensure_ascii=False), [HOSTILE_GUEST, "db-2"]),
    ('["web 1", 7]', ["web 1", "7"]),
    ("web 1", ["web 1"]),
    ('{"name": "web 1"}', ['{"name": "web 1"}']),
], ids=["empty", "no-guests", "hostile-names", "a-number", "not-json", "not-a-list"])
def test_stuck_guest_names_come_from_the_json_list_and_anything_else_shows_as_given(text, names):
    assert fd.stuck_guest_names(text) == names
