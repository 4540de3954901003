"""A store reading each distinct query once while it lives: askers of the same read while it is being made wait
for its answer, later ones get it too, other reads and writes pass through, and the store's error reaches every
asker."""

import threading

import pytest

from tsdb import Point, open_store
from tsdb.errors import QueryError
from tsdb.shared_reads import SharedReads

S = 10**9
START = 1_709_294_400 * S
HOST = 'hv 1, "s"=\\ ü'


class HeldStore:
    """A real store whose `query` waits until `release` is set, counting the calls that reached it."""

    def __init__(self, store):
        self.store, self.calls, self.release = store, 0, threading.Event()

    def query(self, *args, **kwargs):
        self.calls += 1
        assert self.release.wait(30), "nobody released the read"
        return self.store.query(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path):
    with open_store(f"duckdb://{tmp_path}/shared.duckdb") as store:
        store.write([Point("libvirtd", {"host": HOST}, {"probe_ok": 1, "probe_latency_ms": 5.0}, START + i * S)
                     for i in range(10)])
        yield store


def test_askers_of_the_same_read_while_it_is_made_get_the_answer_of_one_read_of_the_store(store):
    held = HeldStore(store)
    shared = SharedReads(held)
    answers = []
    askers = [threading.Thread(target=lambda: answers.append(shared.query(
        "libvirtd", ["probe_ok"], START, START + 10 * S, group_by=["host"]))) for _ in range(3)]
    for asker in askers:
        asker.start()
    while held.calls < 1:
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)  # the others have asked meanwhile (or ask later: either way they must not read)
    assert held.calls == 1
    held.release.set()
    for asker in askers:
        asker.join(30)
    assert held.calls == 1 and shared.queries == 1 and len(answers) == 3
    assert all(answer is answers[0] for answer in answers)
    assert answers[0]["host"].tolist() == store.query("libvirtd", ["probe_ok"], START, START + 10 * S,
                                                      group_by=["host"])["host"].tolist() and len(answers[0]) == 10


def test_different_reads_each_reach_the_store_and_writes_pass_through(store):
    held = HeldStore(store)
    held.release.set()
    shared = SharedReads(held)
    shared.query("libvirtd", ["probe_ok"], START, START + 10 * S)
    shared.query("libvirtd", ["probe_ok"], START, START + 5 * S)
    shared.query("libvirtd", ["probe_ok"], START, START + 10 * S)
    shared.write([Point("libvirtd", {"host": HOST}, {"probe_ok": 0}, START + 20 * S)])
    assert held.calls == 2 and shared.queries == 2
    assert len(store.query("libvirtd", ["probe_ok"], START, START + 30 * S)) == 11


def test_the_stores_error_reaches_every_asker(store):
    shared = SharedReads(store)
    for _ in range(2):
        with pytest.raises(QueryError):
            shared.query("libvirtd", ["probe_ok"], START, START + 10 * S, aggregate="median", window_seconds=60)


def test_only_the_newest_answers_are_kept_so_a_long_series_of_reads_does_not_pile_up(store):
    held = HeldStore(store)
    held.release.set()
    shared = SharedReads(held, keep=2)
    ends = [START + seconds * S for seconds in (3, 4, 5)]
    for end in ends:
        shared.query("libvirtd", ["probe_ok"], START, end)
    shared.query("libvirtd", ["probe_ok"], START, ends[2])  # among the two newest: kept
    assert held.calls == 3
    shared.query("libvirtd", ["probe_ok"], START, ends[0])  # let go: read again
    assert held.calls == 4 and shared.queries == 4
