"""The spool keeps the points the store did not take: durable across a crash, bounded, in order, counted."""

import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.spool import CORRUPT_DIR, Spool, SpoolBusy, encode_points, segment_name
from tsdb.errors import PointError, StoreUnavailable
from tsdb.point import Point

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def points(n, put=0, measurement="vm"):
    return [Point(measurement, {"put": str(put)}, {"i": k, "x": k + 0.5}, put * 1_000_000 + k) for k in range(n)]


def exactly(ps):
    """A comparable form of points that tells 2 from 2.0 from True, -0.0 from 0.0, and NaN equal to NaN."""
    def value(v):
        return (type(v).__name__, repr(v))
    return [(p.measurement, list(p.tags.items()), [(k, value(v)) for k, v in p.fields.items()], p.time_ns)
            for p in ps]


class Collector:
    """A write callback that keeps every batch it is given."""

    def __init__(self):
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch)
        return len(batch)

    @property
    def points(self):
        return [p for batch in self.batches for p in batch]


def segment_files(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".jsonl"))


text = st.text(st.characters(exclude_categories=("Cs",)))
names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1)
field_values = st.one_of(st.floats(), st.integers(-(2**63), 2**63 - 1), st.booleans(), text)
hypothesis_points = st.builds(Point, names, st.dictionaries(names, text, max_size=4),
                              st.dictionaries(names, field_values, min_size=1, max_size=6),
                              st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(hypothesis_points, min_size=1, max_size=8), min_size=1, max_size=3))
def test_points_round_trip_exactly_with_their_types_and_any_unicode(batches):
    with tempfile.TemporaryDirectory() as tmp:
        with Spool(Path(tmp) / "spool", MIB) as spool:
            for batch in batches:
                assert spool.put(batch) == 0
        with Spool(Path(tmp) / "spool", MIB) as spool:  # read back by a fresh Spool: from disk only
            out = Collector()
            assert spool.replay(out) == sum(map(len, batches))
    assert exactly(out.points) == exactly(p for batch in batches for p in batch)
    assert [len(b) for b in out.batches] == [len(b) for b in batches]


def test_whole_floats_stay_floats_bools_stay_bools_and_big_ints_stay_ints(tmp_path):
    fields = {"f": 2.0, "z": -0.0, "e": 1e16, "b": True, "n": False, "i": 2, "big": 2**63 - 1, "neg": -(2**63),
              "nan": math.nan, "inf": -math.inf, "s": "2.0", "empty": ""}
    point = Point("m\u00e9\U0001f600\n\t\\", {"t\u2028": "\x00\"'{}"}, fields, -1)
    with Spool(tmp_path, MIB) as spool:
        spool.put([point])
        out = Collector()
        spool.replay(out)
    assert exactly(out.points) == exactly([point])
    assert type(out.points[0].fields["f"]) is float and type(out.points[0].fields["b"]) is bool


def test_a_segment_file_is_plain_ascii_json_lines_named_by_sequence_and_count(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        spool.put(points(3))
    (name,) = segment_files(tmp_path)
    assert name == segment_name(0, 3) == "000000000000-3.jsonl"
    data = (tmp_path / name).read_bytes()
    assert data.isascii() and data.count(b"\n") == 3 and data.endswith(b"\n")
    assert data.splitlines()[0] == b'{"m":"vm","t":{"put":"0"},"f":{"i":0,"x":0.5},"ns":0}'


def test_replay_is_in_write_order_across_several_puts(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        for put in range(12):  # more than 9, so a non-padded name would sort 10 before 2
            spool.put(points(put + 1, put))
        assert spool.pending_segments == 12 and spool.pending_points == sum(range(1, 13))
        out = Collector()
        assert spool.replay(out) == sum(range(1, 13))
        assert [b[0].tags["put"] for b in out.batches] == [str(put) for put in range(12)]
        assert exactly(out.points) == exactly(p for put in range(12) for p in points(put + 1, put))
        assert spool.pending_segments == spool.pending_points == spool.size_bytes == 0
        assert spool.replayed_total == spool.spooled_total == sum(range(1, 13))
    assert segment_files(tmp_path) == []


def test_a_failing_write_leaves_everything_for_the_next_replay_and_replays_nothing_twice(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        for put in range(5):
            spool.put(points(10, put))
        delivered = []

        def store_down_after_two(batch):
            if len(delivered) == 2:
                raise StoreUnavailable("store down")
            delivered.append(batch)
            return len(batch)

        with pytest.raises(StoreUnavailable):
            spool.replay(store_down_after_two)
        assert spool.pending_segments == 3 and spool.pending_points == 30 and spool.replayed_total == 20
        assert len(segment_files(tmp_path)) == 3
        out = Collector()
        assert spool.replay(out) == 30
        assert [b[0].tags["put"] for b in delivered + out.batches] == ["0", "1", "2", "3", "4"]
        assert spool.replay(out) == 0 and spool.replayed_total == 50 and spool.dropped_total == 0


def test_max_segments_bounds_one_replay(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        for put in range(5):
            spool.put(points(4, put))
        out = Collector()
        assert spool.replay(out, max_segments=2) == 8
        assert spool.replay(out, max_segments=2) == 8
        assert spool.replay(out) == 4
        assert [b[0].tags["put"] for b in out.batches] == ["0", "1", "2", "3", "4"]


def test_exceeding_max_bytes_drops_the_oldest_segments_and_counts_the_points(tmp_path):
    one = len(encode_points(points(10, 0)))  # every put below encodes to this size
    with Spool(tmp_path, max_bytes=3 * one + one // 2) as spool:
        assert [spool.put(points(10, put)) for put in range(3)] == [0, 0, 0]
        assert spool.put(points(10, 3)) == 10  # segment 0 goes
        assert spool.put(points(10, 4)) == 10  # segment 1 goes
        assert spool.size_bytes <= spool.max_bytes and spool.pending_segments == 3
        assert spool.dropped_total == 20 and spool.spooled_total == 50
        out = Collector()
        assert spool.replay(out) == 30
        assert [b[0].tags["put"] for b in out.batches] == ["2", "3", "4"]


def test_a_put_larger_than_the_whole_spool_is_dropped_and_counted_and_keeps_the_rest(tmp_path):
    with Spool(tmp_path, max_bytes=4000) as spool:
        spool.put(points(5, 0))
        assert spool.put(points(1000, 1)) == 1000
        assert spool.dropped_total == 1000 and spool.pending_points == 5 and spool.spooled_total == 5
        assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


def test_the_size_bound_holds_for_every_put(tmp_path):
    with Spool(tmp_path, max_bytes=20_000) as spool:
        for put in range(200):
            spool.put(points(1 + put % 17, put))
            on_disk = sum(f.stat().st_size for f in tmp_path.glob("*.jsonl"))
            assert on_disk == spool.size_bytes <= 20_000
        assert spool.spooled_total == spool.pending_points + spool.dropped_total


def test_a_smaller_limit_on_reopening_drops_the_oldest_and_counts_them(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        for put in range(10):
            spool.put(points(10, put))
        size = spool.size_bytes
    with Spool(tmp_path, max_bytes=size // 2) as spool:
        assert spool.size_bytes <= size // 2
        assert spool.dropped_total == 100 - spool.pending_points > 0
        out = Collector()
        spool.replay(out)
        assert out.batches[-1][0].tags["put"] == "9"


def test_a_disk_that_refuses_the_segment_drops_the_put_counted_and_leaves_no_temp_file(tmp_path, monkeypatch):
    with Spool(tmp_path, MIB) as spool:
        spool.put(points(3, 0))

        def no_space(fd):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", no_space)
        assert spool.put(points(7, 1)) == 7
        monkeypatch.undo()
        assert spool.dropped_total == 7 and spool.pending_points == 3
        assert sorted(os.listdir(tmp_path)) == ["000000000000-3.jsonl", "lock"]
        assert spool.put(points(2, 2)) == 0  # the next put works again
        assert spool.pending_segments == 2


def test_a_point_json_cannot_carry_is_a_clear_error_and_nothing_is_written(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        with pytest.raises(PointError, match="cannot be spooled"):
            spool.put([Point("m", {}, {"v": object()}, 1)])
        assert spool.pending_segments == 0 and spool.dropped_total == 0
        assert spool.put([]) == 0 and spool.pending_segments == 0


CRASHING_AGENT = """
import os, sys, time
from pathlib import Path
from collector.spool import Spool
from tsdb.point import Point

real_write, chunks = os.write, 0
def slow_disk(fd, data):  # short 4 KiB writes, slowly, telling the parent when a segment is half written
    global chunks
    chunks += 1
    if chunks % 20 == 0:
        print("mid-write", flush=True)
    time.sleep(0.0005)
    return real_write(fd, data[:4096])
os.write = slow_disk

spool = Spool(Path(sys.argv[1]), 1 << 30)
put = 0
while True:
    spool.put([Point("vm", {"put": str(put)}, {"i": k, "s": "x" * 40}, put * 1_000_000 + k) for k in range(2000)])
    chunks = 0
    print(put, flush=True)
    put += 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_after, moment", [(0, "between puts"), (5, "mid-write"), (17, "mid-write")])
def test_a_spool_survives_a_crash_with_only_whole_segments_replayed_in_order(tmp_path, kill_after, moment):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", CRASHING_AGENT, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, cwd=REPO, env=env)
    try:
        reported = -1
        while True:
            line = child.stdout.readline().strip()
            assert line, f"the child died early (exit {child.wait()})"
            if line != "mid-write":
                reported = int(line)
            if reported >= kill_after and (moment == "between puts" or line == "mid-write"):
                break
        child.send_signal(signal.SIGKILL)  # it keeps putting meanwhile
        assert child.wait(10) == -signal.SIGKILL
    finally:
        child.kill()
        child.stdout.close()
    half_written = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    if moment == "mid-write":
        assert half_written, "the kill was meant to land inside a segment's write"

    with Spool(tmp_path, 1 << 30) as spool:
        assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
        out = Collector()
        spool.replay(out)
        assert spool.corrupt_segments_total == 0
    puts = [int(batch[0].tags["put"]) for batch in out.batches]
    assert puts == list(range(len(puts))) and len(puts) > reported  # every acknowledged put, in order
    for put, batch in zip(puts, out.batches):
        assert [p.time_ns for p in batch] == [put * 1_000_000 + k for k in range(2000)]  # whole, never half


def test_a_corrupt_segment_is_set_aside_and_counted_and_the_rest_replays(tmp_path, caplog):
    with Spool(tmp_path, MIB) as spool:
        for put in range(5):
            spool.put(points(4, put))
    files = segment_files(tmp_path)
    (tmp_path / files[1]).write_bytes((tmp_path / files[1]).read_bytes()[:-30])  # cut short
    (tmp_path / files[2]).write_bytes(b"\x00\x00\x00\x00")  # zeroed by the file system
    lines = (tmp_path / files[3]).read_bytes().splitlines(keepends=True)
    (tmp_path / files[3]).write_bytes(b"".join(lines[:-1]))  # a whole line lost: the name says 4 points
    with Spool(tmp_path, MIB) as spool:
        assert spool.pending_segments == 5
        out = Collector()
        assert spool.replay(out) == 8
        assert spool.corrupt_segments_total == 3 and spool.pending_segments == 0
    assert [b[0].tags["put"] for b in out.batches] == ["0", "4"]
    assert sorted(os.listdir(tmp_path / CORRUPT_DIR)) == files[1:4]
    assert stat.S_IMODE((tmp_path / CORRUPT_DIR).stat().st_mode) == 0o700
    for name in files[1:4]:
        assert name in caplog.text
    with Spool(tmp_path, MIB) as spool:  # never retried
        assert spool.pending_segments == 0 and spool.replay(Collector()) == 0


def test_sequence_numbers_continue_after_reopening(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        for put in range(3):
            spool.put(points(2, put))
    with Spool(tmp_path, MIB) as spool:
        assert spool.pending_segments == 3 and spool.pending_points == 6
        spool.put(points(5, 3))
        spool.replay(Collector(), max_segments=1)
    assert segment_files(tmp_path) == [segment_name(1, 2), segment_name(2, 2), segment_name(3, 5)]
    with Spool(tmp_path, MIB) as spool:
        spool.put(points(1, 4))
        out = Collector()
        spool.replay(out)
    assert [b[0].tags["put"] for b in out.batches] == ["1", "2", "3", "4"]


def test_sequence_numbers_never_reuse_a_name_set_aside_as_corrupt(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        spool.put(points(2, 0))
    (tmp_path / segment_name(0, 2)).write_bytes(b"garbage\n")
    with Spool(tmp_path, MIB) as spool:
        spool.replay(Collector())
    with Spool(tmp_path, MIB) as spool:
        spool.put(points(2, 1))
    assert segment_files(tmp_path) == [segment_name(1, 2)]


def test_pending_counts_come_from_the_file_names_without_reading_them(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        spool.put(points(37, 0))
        spool.put(points(5, 1))
    for name in segment_files(tmp_path):
        os.chmod(tmp_path / name, 0)  # unreadable: opening the spool must not need the contents
    try:
        with Spool(tmp_path, MIB) as spool:
            assert (spool.pending_segments, spool.pending_points) == (2, 42)
            assert spool.size_bytes == sum(f.stat().st_size for f in tmp_path.glob("*.jsonl"))
    finally:
        for name in segment_files(tmp_path):
            os.chmod(tmp_path / name, 0o600)


def test_a_temp_file_left_by_a_crash_is_removed_on_opening(tmp_path):
    with Spool(tmp_path, MIB) as spool:
        spool.put(points(2, 0))
    (tmp_path / f".{segment_name(1, 9)}.tmp").write_bytes(b'{"m":"vm"')
    with Spool(tmp_path, MIB) as spool:
        assert spool.pending_points == 2
    assert sorted(os.listdir(tmp_path)) == [segment_name(0, 2), "lock"]


def test_the_directory_is_private_and_owned_by_one_spool_at_a_time(tmp_path):
    directory = tmp_path / "a" / "spool"
    with Spool(directory, MIB) as spool:
        spool.put(points(1))
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / segment_files(directory)[0]).stat().st_mode) == 0o600
        with pytest.raises(SpoolBusy, match="already in use"):
            Spool(directory, MIB)
    with Spool(directory, MIB) as again:  # released on close
        assert again.pending_points == 1
    with pytest.raises(ValueError, match="closed"):
        again.put(points(1))


def test_puts_during_a_replay_lose_nothing_and_replay_nothing_twice(tmp_path):
    with Spool(tmp_path, max_bytes=8_000) as spool:
        out = Collector()
        done = threading.Event()

        def slow_store(batch):
            time.sleep(0.001)
            return out(batch)

        def agent():
            for put in range(300):
                spool.put(points(1 + put % 7, put))
            done.set()

        thread = threading.Thread(target=agent)
        thread.start()
        while not done.is_set():
            spool.replay(slow_store)
        thread.join()
        spool.replay(slow_store)
        seen = [int(b[0].tags["put"]) for b in out.batches]
        assert seen == sorted(set(seen))  # in order, none twice
        assert spool.replayed_total == len(out.points)
        assert spool.replayed_total + spool.dropped_total == sum(1 + put % 7 for put in range(300))
        assert spool.size_bytes == 0


def test_ten_thousand_points_in_one_put_replay_whole_and_in_order(tmp_path):
    """Speed is measured in benchmarks/, never asserted here: this checks a large batch stays exact."""
    batch = [Point("domain", {"host": "hv1", "domain": f"vm-{k % 100}", "uuid": f"{k:032x}"},
                   {"cpu_time_ns": k * 1000, "cpu_percent": k / 7, "state": "running", "up": True},
                   1_700_000_000_000_000_000 + k) for k in range(10_000)]
    collector = Collector()
    with Spool(tmp_path, 64 * MIB) as spool:
        spool.put(batch)
        assert spool.replay(collector) == 10_000
    assert collector.points == batch
