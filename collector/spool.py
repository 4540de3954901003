"""The agent's spool: a durable on-disk queue of the points the store did not take.

Layout of the spool directory (created with mode 0700):

    000000000041-37.jsonl   one segment per `put()`: sequence number, then how many points it holds
    000000000042-500.jsonl  (so counting what is pending never reads a file)
    corrupt/                segments that could not be read back, set aside for the operator
    lock                    held (flock) by the one Spool that owns the directory

A segment is JSON lines, one point a line: `{"m": measurement, "t": {tags}, "f": {fields}, "ns": time_ns}`.
JSON keeps the types apart (2 is an int, 2.0 a float, true a bool), floats are written with `repr` so they
come back bit for bit (NaN and ±inf too), and every non-ASCII character is escaped, so any unicode in names
and values round-trips exactly and a segment file is plain ASCII.

Durability: a segment is written as tsdb.durable writes every file (a hidden temp file, fsync'd, renamed into
place, and the directory fsync'd; mode 0600, as it holds the host's and its guests' names and values), so a
crash at any moment leaves the whole segment or none of it, and `put()` returns only once it is on disk. Temp
files left by a crash are removed when a Spool opens the directory (their `put()` never returned). A replayed
segment is deleted, and the directory fsync'd, only after the write call returned, so nothing acknowledged is
lost and nothing is replayed twice. Sequence numbers continue from the highest name found on opening (pending or set aside).

The size bound (`max_bytes`, the sum of the segment files) holds at every moment, crashes included: before a
segment is written, the oldest segments are deleted until it fits, and their points are counted in
`dropped_total`. A single put larger than `max_bytes` on its own is dropped whole (and counted) rather than
emptying the spool for a batch that could not be kept anyway. If a concurrent `replay()` is writing the
oldest segment at that moment, that segment is not evicted (it is being delivered); should the new segment
still not fit, the new one is dropped and counted instead. Opening a directory with a smaller `max_bytes`
than it was filled with drops the oldest segments the same way.

A segment that cannot be parsed (truncated or garbled by disk trouble, or holding a different number of
points than its name says) is moved to `corrupt/` (the newest CORRUPT_KEEP are kept), logged with its name,
counted in `corrupt_segments_total`, and never retried. Counters are per process; the agent reports them.

One lock guards the bookkeeping, so put/replay/properties are safe from several threads; a replay does not
hold it while its write call runs, so a put is never stuck behind a slow store. Two Spool objects (in one
process or two) on one directory are refused with SpoolBusy: two owners could replay a segment twice.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from tsdb.durable import TEMP_SUFFIX, sync_directory, write_durably
from tsdb.errors import PointError
from tsdb.point import Point

log = logging.getLogger("virtwatch.spool")

SEGMENT_NAME = re.compile(r"^(\d{12,})-(\d+)\.jsonl$")
CORRUPT_DIR = "corrupt"
LOCK_FILE = "lock"
#: how many set-aside segments corrupt/ keeps (oldest deleted first), so it stays bounded too
CORRUPT_KEEP = 32

_encode = json.JSONEncoder(separators=(",", ":")).encode  # ensure_ascii, allow_nan: exact and ASCII-only
_decode = json.JSONDecoder().decode
_FIELD_TYPES = (float, int, bool, str)


class SpoolBusy(RuntimeError):
    """Another Spool (in this process or another) already owns the directory."""


class CorruptSegment(ValueError):
    """A segment that cannot be read back as the points its name promises."""


@dataclass(slots=True)
class _Segment:
    seq: int
    count: int
    size: int

    @property
    def name(self) -> str:
        return segment_name(self.seq, self.count)


def segment_name(seq: int, count: int) -> str:
    """Return the file name of segment `seq` holding `count` points (lexical order is write order)."""
    return f"{seq:012d}-{count}.jsonl"


def encode_points(points: Iterable[Point]) -> bytes:
    """Return points as segment bytes: one JSON object a line, ASCII only. Raise PointError for a bad value."""
    lines = []
    for point in points:
        try:
            lines.append(_encode({"m": point.measurement, "t": point.tags, "f": point.fields, "ns": point.time_ns}))
        except (TypeError, ValueError) as err:
            raise PointError(f"{point.measurement!r}: cannot be spooled: {err}") from None
    lines.append("")
    return "\n".join(lines).encode("ascii")


def decode_points(data: bytes, expected: int | None = None) -> list[Point]:
    """Return the points of segment bytes; raise CorruptSegment when they are not exactly what put() wrote."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise CorruptSegment(f"not ASCII at byte {err.start}") from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise CorruptSegment("the last line is cut short (no newline)")
    lines.pop()
    if expected is not None and len(lines) != expected:
        raise CorruptSegment(f"{len(lines)} lines, the name says {expected} points")
    points = []
    for number, line in enumerate(lines, 1):
        try:
            obj = _decode(line)
            point = Point(obj["m"], obj["t"], obj["f"], obj["ns"])
        except (ValueError, KeyError, TypeError) as err:
            raise CorruptSegment(f"line {number}: {err}") from None
        if (type(point.measurement) is not str or type(point.tags) is not dict or type(point.fields) is not dict
                or type(point.time_ns) is not int
                or not all(type(v) is str for v in point.tags.values())
                or not all(type(v) in _FIELD_TYPES for v in point.fields.values())):
            raise CorruptSegment(f"line {number}: not a point")
        points.append(point)
    return points


class Spool:
    """A durable, size-bounded, ordered on-disk queue of points (see the module docstring)."""

    def __init__(self, directory: Path, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes = {max_bytes}: must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._segments: dict[int, _Segment] = {}  # oldest first
        self._size = 0
        self._points = 0
        self._in_flight: int | None = None  # the segment a replay is writing right now
        self._closed = False
        self._dropped_total = self._replayed_total = self._spooled_total = self._corrupt_segments_total = 0

        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(self.directory, 0o700)  # whatever the umask
        self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"spool {self.directory}: already in use by another agent (lock file {LOCK_FILE})") \
                from None
        try:
            self._scan()
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _scan(self) -> None:
        found: list[_Segment] = []
        leftovers = 0
        next_seq = 0
        for entry in os.scandir(self.directory):
            match = SEGMENT_NAME.match(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                segment = _Segment(int(match[1]), int(match[2]), entry.stat(follow_symlinks=False).st_size)
                found.append(segment)
                next_seq = max(next_seq, segment.seq + 1)
            elif entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                os.unlink(entry.path)
                leftovers += 1
        if leftovers:
            sync_directory(self.directory)
            log.warning("spool %s: removed %d unfinished segment(s) left by a crash", self.directory, leftovers)
        for name in self._corrupt_names():
            next_seq = max(next_seq, int(SEGMENT_NAME.match(name)[1]) + 1)
        self._next_seq = next_seq
        for segment in sorted(found, key=lambda s: s.seq):
            self._segments[segment.seq] = segment
            self._size += segment.size
            self._points += segment.count
        if self._size > self.max_bytes:
            dropped = self._evict(self.max_bytes)
            log.warning("spool %s: over its limit of %d bytes on opening; dropped the oldest %d points",
                        self.directory, self.max_bytes, dropped)

    def _corrupt_names(self) -> list[str]:
        try:
            names = os.listdir(self.directory / CORRUPT_DIR)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if SEGMENT_NAME.match(n)), key=lambda n: int(SEGMENT_NAME.match(n)[1]))

    # -- writing ------------------------------------------------------------------------------------------

    def put(self, points: list[Point]) -> int:
        """Append the points as one durable segment; return how many points this call had to drop.

        Dropped are the oldest spooled points when the spool would exceed max_bytes, or the new points
        themselves when they alone exceed it or the disk refuses them (logged). Raise PointError for a point
        whose values JSON cannot carry (a caller bug: not counted, nothing written).
        """
        points = list(points)
        if not points:
            return 0
        data = encode_points(points)
        with self._lock:
            self._check_open()
            if len(data) > self.max_bytes:
                log.error("spool %s: a batch of %d points (%d bytes) exceeds the spool limit of %d bytes; dropped",
                          self.directory, len(points), len(data), self.max_bytes)
                self._dropped_total += len(points)
                return len(points)
            dropped = self._evict(self.max_bytes - len(data))
            if self._size + len(data) > self.max_bytes:  # only the segment a replay is writing is left
                log.warning("spool %s: full while its oldest segment is being replayed; dropped %d new points",
                            self.directory, len(points))
                self._dropped_total += len(points)
                return dropped + len(points)
            seq = self._next_seq
            self._next_seq += 1
            segment = _Segment(seq, len(points), len(data))
            try:
                write_durably(self.directory / segment.name, data)
            except OSError as err:
                log.error("spool %s: cannot write segment %s (%s); dropped %d points",
                          self.directory, segment.name, err, len(points))
                self._dropped_total += len(points)
                return dropped + len(points)
            self._segments[seq] = segment
            self._size += segment.size
            self._points += segment.count
            self._spooled_total += segment.count
            return dropped

    def _evict(self, room: int) -> int:
        """Delete the oldest segments (not one being replayed) until the spool holds at most `room` bytes."""
        dropped = 0
        victims = []
        size = self._size
        for seq, segment in self._segments.items():
            if size <= room:
                break
            if seq == self._in_flight:
                continue
            victims.append(segment)
            size -= segment.size
        if not victims:
            return 0
        for segment in victims:
            try:
                os.unlink(self.directory / segment.name)
            except FileNotFoundError:
                pass
            self._forget(segment)
            dropped += segment.count
        sync_directory(self.directory)
        self._dropped_total += dropped
        log.warning("spool %s: over its limit of %d bytes; dropped the oldest %d segment(s), %d points",
                    self.directory, self.max_bytes, len(victims), dropped)
        return dropped

    def _forget(self, segment: _Segment) -> None:
        del self._segments[segment.seq]
        self._size -= segment.size
        self._points -= segment.count

    # -- reading ------------------------------------------------------------------------------------------

    def replay(self, write: Callable[[list[Point]], int], max_segments: int | None = None) -> int:
        """Write spooled segments oldest first, each deleted once `write` returns; return the points replayed.

        An exception from `write` stops the replay and is re-raised; that segment and the later ones stay for
        the next replay. At most `max_segments` segments are written (all when None); corrupt segments are
        set aside and do not count towards it.
        """
        replayed = 0
        written = 0
        with self._replay_lock:
            while max_segments is None or written < max_segments:
                with self._lock:
                    self._check_open()
                    if not self._segments:
                        break
                    segment = next(iter(self._segments.values()))
                    self._in_flight = segment.seq
                try:
                    points = self._read(segment)
                except CorruptSegment as err:
                    with self._lock:
                        self._in_flight = None
                        self._set_aside(segment, str(err))
                    continue
                except FileNotFoundError:
                    with self._lock:
                        self._in_flight = None
                        log.error("spool %s: segment %s vanished; %d points lost",
                                  self.directory, segment.name, segment.count)
                        self._forget(segment)
                        self._dropped_total += segment.count
                    continue
                except BaseException:
                    with self._lock:
                        self._in_flight = None
                    raise
                try:
                    write(points)
                except BaseException:
                    with self._lock:
                        self._in_flight = None
                    raise
                with self._lock:  # still in flight until deleted, so a concurrent put cannot evict it meanwhile
                    self._in_flight = None
                    os.unlink(self.directory / segment.name)
                    self._forget(segment)
                    self._replayed_total += segment.count
                    sync_directory(self.directory)
                replayed += segment.count
                written += 1
        return replayed

    def _read(self, segment: _Segment) -> list[Point]:
        path = self.directory / segment.name
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as err:
            if err.errno == errno.EIO:
                raise CorruptSegment(f"cannot be read: {err}") from None
            raise
        return decode_points(data, segment.count)

    def _set_aside(self, segment: _Segment, reason: str) -> None:
        corrupt = self.directory / CORRUPT_DIR
        try:
            corrupt.mkdir(mode=0o700, exist_ok=True)
            os.replace(self.directory / segment.name, corrupt / segment.name)
            sync_directory(corrupt)
            sync_directory(self.directory)
            where = f"moved to {corrupt / segment.name}"
        except OSError as err:
            where = f"could not be moved aside ({err}); skipped"
        self._forget(segment)
        self._corrupt_segments_total += 1
        log.error("spool %s: segment %s (%d points) is corrupt: %s; %s",
                  self.directory, segment.name, segment.count, reason, where)
        for name in self._corrupt_names()[:-CORRUPT_KEEP]:
            try:
                os.unlink(corrupt / name)
            except OSError:
                pass

    # -- state --------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"spool {self.directory} is closed")

    def close(self) -> None:
        """Release the directory (the segments stay for the next Spool on it)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes}, "
                f"pending_segments={self.pending_segments}, pending_points={self.pending_points})")

    @property
    def pending_segments(self) -> int:
        with self._lock:
            return len(self._segments)

    @property
    def pending_points(self) -> int:
        with self._lock:
            return self._points

    @property
    def size_bytes(self) -> int:
        """Bytes of the pending segments (never more than max_bytes)."""
        with self._lock:
            return self._size

    @property
    def dropped_total(self) -> int:
        """Points this process dropped: evicted for size, too big for the spool, refused by the disk, vanished."""
        with self._lock:
            return self._dropped_total

    @property
    def replayed_total(self) -> int:
        with self._lock:
            return self._replayed_total

    @property
    def spooled_total(self) -> int:
        """Points this process put in the spool (durably written)."""
        with self._lock:
            return self._spooled_total

    @property
    def corrupt_segments_total(self) -> int:
        with self._lock:
            return self._corrupt_segments_total
