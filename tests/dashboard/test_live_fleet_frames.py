"""The fleet frame of a live (relative) range, kept fresh in the background (dashboard.live_frames) while the pages
ask for it, on InfluxDB 1.6 and DuckDB: reads counted at the store, time moved by a fake monotonic clock handed to
the keeper (the page's clock is fixed at the planted data's end), never by sleeping."""

from __future__ import annotations

import threading

import pytest
from counting_store import CountingStore
from planted import to_ns
from planted_fleet import HOSTILE_HOSTS, fleet_hosts, plant_fleet

from dashboard import data
from dashboard.live_frames import WATCHED_SECONDS, LiveFrames
from dashboard.timerange import RangeSpec, format_time, resolve
from tsdb import Point
from tsdb.errors import StoreUnavailable

pytestmark = pytest.mark.influxdb

EVERY = data.FLEET_CACHE_SECONDS
#: a moment of the fake monotonic clock to start from
T0 = 1000.0


class FakeMonotonic:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FailingStore(CountingStore):
    """A counting store whose every call raises StoreUnavailable while `down` is set."""

    def __init__(self, store):
        super().__init__(store)
        self.down = False

    def __getattr__(self, name):
        method = super().__getattr__(name)
        if not callable(method):
            return method

        def maybe_down(*args, **kwargs):
            if self.down:
                raise StoreUnavailable(f"{name}: the store is down (planted)")
            return method(*args, **kwargs)
        return maybe_down


class BlockingStore(CountingStore):
    """A counting store whose every call, while `hold` is set, waits until `gate` opens (counted in `entered`)."""

    def __init__(self, store):
        super().__init__(store)
        self.hold, self.gate, self.entered = False, threading.Event(), threading.Semaphore(0)

    def __getattr__(self, name):
        method = super().__getattr__(name)
        if not callable(method):
            return method

        def maybe_blocked(*args, **kwargs):
            if self.hold:
                self.entered.release()
                self.gate.wait(30)  # opened by the test; the bound only keeps a broken test from hanging the run
            return method(*args, **kwargs)
        return maybe_blocked


@pytest.fixture
def monotonic():
    """The fake monotonic clock of the keeper the fleet frames use in these tests."""
    return FakeMonotonic()


@pytest.fixture
def keeper(monkeypatch, monotonic):
    """A keeper of live fleet frames without a thread of its own (the tests call refresh_due), used by
    data.fleet_frame for the test."""
    kept = LiveFrames(EVERY, max_keys=data._FLEET_CACHE_MAX, monotonic=monotonic, background=False)
    monkeypatch.setattr(data, "live_fleet_frames", kept)
    data.clear_caches()
    yield kept
    data.clear_caches()


@pytest.fixture
def fleet(store, fixed_now):
    """The store holding a planted fleet of 40 hosts and the hostile names, ending at fixed_now."""
    plant_fleet(store, to_ns(fixed_now), 40)
    return store


def live_range(fixed_now, name: str = "24h"):
    """Return the range the page resolves `name` to when its clock says fixed_now."""
    return resolve(RangeSpec(name), to_ns(fixed_now))


def frame_of(store, fixed_now, rng=None):
    """Return the fleet frame as the fleet page's callbacks ask for it (the page's clock fixed at fixed_now)."""
    return data.fleet_frame(store, rng or live_range(fixed_now), (), None, lambda: fixed_now)


def test_a_live_range_asked_for_twice_within_the_cache_seconds_reads_the_store_once(fleet, keeper, monotonic,
                                                                                   fixed_now):
    counting = CountingStore(fleet)
    first = frame_of(counting, fixed_now)
    reads = len(counting.calls)
    assert reads > 0 and len(first) == len(fleet_hosts(40))
    monotonic.now = T0 + EVERY
    assert frame_of(counting, fixed_now) is first and len(counting.calls) == reads


def test_once_the_refresher_has_run_a_callback_after_the_cache_seconds_reads_nothing_and_sees_a_newer_point(
        fleet, keeper, monotonic, fixed_now):
    counting = CountingStore(fleet)
    first = frame_of(counting, fixed_now)
    fleet.write([Point("libvirtd", {"host": "hv-new"}, {"up": 1, "hung": 0, "probe_ok": 1, "probe_latency_ms": 9.0},
                       to_ns(fixed_now) - 3 * 10**9)])
    monotonic.now = T0 + EVERY
    before = len(counting.calls)
    assert keeper.refresh_due(monotonic.now) == 1 and len(counting.calls) > before  # the background read
    read = len(counting.calls)
    monotonic.now = T0 + EVERY + 5  # the first frame is too old now: only the refreshed one may be served
    served = frame_of(counting, fixed_now)
    assert len(counting.calls) == read  # the callback read nothing itself
    assert "hv-new" not in set(first["host"])
    assert served.set_index("host").loc["hv-new", "status"] == "up"


def test_a_range_not_asked_for_the_watched_seconds_is_not_refreshed_and_is_forgotten(fleet, keeper, monotonic,
                                                                                     fixed_now):
    counting = CountingStore(fleet)
    frame_of(counting, fixed_now)
    monotonic.now = T0 + EVERY
    assert keeper.refresh_due(monotonic.now) == 1  # watched: refreshed
    counting.calls.clear()
    monotonic.now = T0 + WATCHED_SECONDS + 1
    assert keeper.refresh_due(monotonic.now) == 0 and counting.calls == []
    monotonic.now += 3 * EVERY
    assert keeper.refresh_due(monotonic.now) == 0 and counting.calls == []
    assert len(frame_of(counting, fixed_now)) and counting.calls  # nothing kept: the callback reads itself


def test_a_custom_range_behaves_exactly_as_before(fleet, keeper, monotonic, fixed_now):
    live = live_range(fixed_now)
    custom = resolve(RangeSpec("custom", format_time(_utc(live.start_ns)), format_time(_utc(live.end_ns))),
                     to_ns(fixed_now))
    assert (custom.start_ns, custom.end_ns) == (live.start_ns, live.end_ns) and custom.label != live.label
    counting = CountingStore(fleet)
    first = frame_of(counting, fixed_now, custom)
    reads = len(counting.calls)
    assert frame_of(counting, fixed_now, custom) is first and len(counting.calls) == reads  # the 10 s cache
    monotonic.now = T0 + EVERY
    assert keeper.refresh_due(monotonic.now) == 0 and len(counting.calls) == reads  # nothing watched
    data.clear_caches(fleet_frames_only=True)  # as when FLEET_CACHE_SECONDS have passed
    again = frame_of(counting, fixed_now, custom)
    assert again is not first and again.equals(first) and len(counting.calls) > reads  # read again
    assert frame_of(CountingStore(fleet), fixed_now).equals(first)  # the live range's frame is the same


def test_a_background_read_that_fails_leaves_callbacks_reading_themselves(fleet, keeper, monotonic, fixed_now):
    failing = FailingStore(fleet)
    first = frame_of(failing, fixed_now)
    failing.down = True
    monotonic.now = T0 + EVERY
    assert keeper.refresh_due(monotonic.now) == 1  # it failed, and raised nothing
    assert frame_of(failing, fixed_now) is first  # still fresh: read EVERY seconds ago
    monotonic.now = T0 + EVERY + 1
    with pytest.raises(StoreUnavailable):  # too old: the callback reads itself, and the page shows its error
        frame_of(failing, fixed_now)
    failing.down = False
    failing.calls.clear()
    assert frame_of(failing, fixed_now).equals(first) and failing.calls


def test_a_background_read_that_blocks_does_not_block_a_callback(fleet, keeper, monotonic, fixed_now):
    blocking = BlockingStore(fleet)
    first = frame_of(blocking, fixed_now)
    blocking.hold = True
    monotonic.now = T0 + EVERY
    refresher = threading.Thread(target=keeper.refresh_due, args=(monotonic.now,), daemon=True)
    refresher.start()
    try:
        assert blocking.entered.acquire(timeout=60), "the background read never reached the store"
        # read EVERY seconds ago, in no time (by the fake clock): still fresh, served without asking the store
        assert frame_of(blocking, fixed_now) is first
        monotonic.now = T0 + EVERY + 1  # too old: the callback reads itself, through a store path that answers
        working = CountingStore(fleet)
        assert frame_of(working, fixed_now).equals(first) and working.calls
        assert refresher.is_alive() and not blocking.gate.is_set()  # the background read was blocked all along
        monotonic.now = T0 + 3 * EVERY
        assert keeper.refresh_due(monotonic.now) == 0  # no second reader for the key while one is running
    finally:
        blocking.gate.set()
        refresher.join(60)
    assert not refresher.is_alive()


def test_hostile_host_names_round_trip_in_a_frame_served_from_the_keeper(fleet, keeper, monotonic, fixed_now):
    counting = CountingStore(fleet)
    frame_of(counting, fixed_now)
    monotonic.now = T0 + EVERY
    keeper.refresh_due(monotonic.now)
    read = len(counting.calls)
    monotonic.now = T0 + EVERY + 5
    served = frame_of(counting, fixed_now)
    assert len(counting.calls) == read  # from the keeper
    by_host = served.set_index("host")["status"]
    planted = {host.name: host.status for host in fleet_hosts(40)}
    assert set(HOSTILE_HOSTS) <= set(by_host.index)
    assert {host: by_host[host] for host in HOSTILE_HOSTS} == {host: planted[host] for host in HOSTILE_HOSTS}


def test_the_fleet_pages_callback_over_a_live_range_is_served_from_the_kept_frame_and_says_its_range(
        fleet, keeper, monotonic, fixed_now, tmp_path):
    import json

    from dash_requests import UPDATE_PATH, fleet_rows_body

    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    counting = CountingStore(fleet)
    app = create_app(DashboardContext(counting, [], tmp_path / "alerts", clock=lambda: fixed_now))
    client = app.server.test_client()
    body = fleet_rows_body({"range": "24h", "refresh": "1m"}, {"startRow": 0, "endRow": 50, "sortModel": [],
                                                               "filterModel": {}})
    headers = {"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:8050"}

    def ask() -> tuple[str, list]:
        """Ask for the first page of rows as the grid does; return the note's text and the hosts."""
        response = client.post(UPDATE_PATH, data=json.dumps(body), content_type="application/json", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        answer = json.loads(response.get_data())["response"]
        note = answer["fleet-count"]["children"]["props"]["children"]
        return note, [row["host"] for row in answer["fleet-grid"]["getRowsResponse"]["rowData"]]

    _, hosts = ask()
    assert counting.calls and "hv-late" not in hosts
    fleet.write([Point("libvirtd", {"host": "hv-late"}, {"up": 0, "hung": 0, "probe_ok": 0},
                       to_ns(fixed_now) - 2 * 10**9)])  # down: worst first puts it on the first page
    monotonic.now = T0 + EVERY
    assert keeper.refresh_due(monotonic.now) == 1
    read = len(counting.calls)
    monotonic.now = T0 + EVERY + 5
    note, hosts = ask()
    assert len(counting.calls) == read and "hv-late" in hosts  # the background read's frame, nothing read now
    hosts_now = len(fleet_hosts(40)) + 1
    assert note.startswith(f"{hosts_now} of {hosts_now} hosts") and note.endswith(" · last 24 hours")


def test_a_read_starts_early_by_as_long_as_the_last_one_took_so_its_frame_is_kept_before_the_last_expires():
    monotonic = FakeMonotonic()

    def read():
        monotonic.now += 2  # a read of 2 s
        return f"read at {monotonic.now}"

    kept = LiveFrames(EVERY, monotonic=monotonic, background=False)
    assert kept.served("key", read) is None
    kept.keep("key", "first", T0, T0 + 2)
    assert kept.refresh_due(T0 + EVERY - 2.5) == 0
    monotonic.now = T0 + EVERY - 2
    assert kept.refresh_due(monotonic.now) == 1  # from T0 + EVERY - 2 to T0 + EVERY
    monotonic.now = T0 + EVERY + 2.5  # "first" (read from T0 for 2 s) is too old now; the newer one is served
    assert kept.served("key", read) == f"read at {T0 + EVERY}"


def test_a_store_down_for_many_refreshes_is_told_once_by_name_and_its_return_once(caplog):
    monotonic = FakeMonotonic()
    down = [True]

    def read():
        if down[0]:
            raise StoreUnavailable("influxdb://127.0.0.1:1/x: connection refused")
        return "frame"

    kept = LiveFrames(EVERY, monotonic=monotonic, background=False)
    kept.served("key", read, "the fleet over the last 24 hours from influxdb://127.0.0.1:1/x")
    with caplog.at_level("INFO", logger="dashboard.live_frames"):
        for step in range(1, 7):  # a minute of refreshes with the store down
            monotonic.now = T0 + step * EVERY
            assert kept.refresh_due(monotonic.now) == 1
        down[0] = False
        monotonic.now = T0 + 7 * EVERY
        assert kept.refresh_due(monotonic.now) == 1
    told = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "dashboard.live_frames"]
    assert [level for level, _ in told] == ["WARNING", "INFO"]
    assert told[0][1].startswith("the fleet over the last 24 hours from influxdb://127.0.0.1:1/x: the background "
                                 "read failed (pages read the store themselves until one succeeds): ")
    assert told[1][1] == "the fleet over the last 24 hours from influxdb://127.0.0.1:1/x: the background read " \
                         "succeeds again"
    assert kept.served("key", read) == "frame"


def test_the_keepers_own_thread_re_reads_a_watched_range_without_being_asked_again():
    reads = threading.Semaphore(0)

    def read():
        reads.release()
        return "frame"

    kept = LiveFrames(0.01)
    try:
        assert kept.served("key", read) is None  # the caller reads itself, and hands the frame over
        kept.keep("key", "first", kept.now(), kept.now())
        assert all(reads.acquire(timeout=30) for _ in range(2)), "the background thread did not re-read"
    finally:
        kept.stop()


def _utc(ns: int):
    """Return nanoseconds since the epoch as an aware datetime (UTC)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ns // 10**9, tz=dt.timezone.utc)
