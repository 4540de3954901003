"""libvirtd's file log: a pure parser of its lines and a tailer that follows the file across rotation.

libvirtd's file output (log_outputs = "N:file:PATH") writes one record per message, in one write() call:

    2026-11-23 20:02:49.561+0000: 21473: error : virDomainObjBeginJobInternal:468 : Timed out during ...

that is: timestamp with UTC offset, thread id, level (debug, info, warning, error), then `function:line : `
when the call site is known, then the message (libvirt src/util/virlog.c, virLogFormatString). A message
may run over several lines (QEMU's stderr relayed by "qemu unexpectedly closed the monitor: ...", whose lines
start with QEMU's own ISO timestamps, or a child's output ending in a newline): every line that does not start
with libvirtd's timestamp continues the record before it.

Malformed lines are counted, never fatal: a line that starts like a header (`YYYY-MM-DD HH:MM:SS`) but is not
one (a record cut short when the daemon died mid-write, an unknown level, an impossible date), and
continuation lines with no record before them.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

LEVELS = ("debug", "info", "warning", "error")
PROBLEM_LEVELS = ("warning", "error")

_HEADER = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}): (?P<thread>\d+): (?P<level>[a-z]+) : "
    r"(?:(?P<function>[A-Za-z_]\w*):(?P<lineno>\d+) : )?(?P<message>.*)"
)
_LOOKS_LIKE_HEADER = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")  # libvirtd's, not QEMU's "...T...Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class LogRecord:
    """One libvirtd log record: when, which thread, how bad, where in libvirt, and the message."""

    time_ns: int
    thread_id: int
    level: str
    function: str | None
    message: str
    function_line: int | None = None

    @property
    def is_problem(self) -> bool:
        """Return True for warning and error records, the ones the agent looks at."""
        return self.level in PROBLEM_LEVELS


def _time_ns(text: str) -> int | None:
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f%z")
    except ValueError:
        return None
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def parse_line(text: str) -> LogRecord | None:
    """Return the record a header line starts, or None when the line is not a libvirtd header."""
    found = _HEADER.fullmatch(text.rstrip("\r\n"))
    if found is None or found["level"] not in LEVELS:
        return None
    time_ns = _time_ns(found["date"])
    if time_ns is None:
        return None
    lineno = found["lineno"]
    return LogRecord(time_ns=time_ns, thread_id=int(found["thread"]), level=found["level"],
                     function=found["function"], message=found["message"],
                     function_line=int(lineno) if lineno is not None else None)


def is_header_start(text: str) -> bool:
    """Return True when `text` starts like a libvirtd header line (a new record, well formed or not)."""
    return _LOOKS_LIKE_HEADER.match(text) is not None


def _finish(record: LogRecord, continuation: list[str]) -> LogRecord:
    if not continuation:
        return record
    message = "\n".join([record.message, *continuation]).rstrip()
    return LogRecord(record.time_ns, record.thread_id, record.level, record.function, message,
                     record.function_line)


def parse_lines(lines: list[str]) -> tuple[list[LogRecord], int]:
    """Return the records in `lines` (continuations joined to their record) and the count of malformed lines."""
    records: list[LogRecord] = []
    malformed = 0
    current: LogRecord | None = None
    continuation: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        record = parse_line(line)
        if record is None and is_header_start(line):
            malformed += 1  # a header cut short or garbled: not a record, and not part of the previous one
            continue
        if record is not None:
            if current is not None:
                records.append(_finish(current, continuation))
            current, continuation = record, []
        elif current is not None:
            continuation.append(line)
        elif line.strip():
            malformed += 1  # continuation with nothing to continue
    if current is not None:
        records.append(_finish(current, continuation))
    return records, malformed


def parse_text(text: str) -> tuple[list[LogRecord], int]:
    """Return the records of a whole log text and the count of malformed lines."""
    return parse_lines(text.splitlines())


class LogTailer:
    """Follows libvirtd's log file and returns the records appended since the last read.

    - The first open at construction time starts at the END of the file: what is already there is history,
      not new failures (pass `from_start=True` to read it all). A file that appears later (it was missing,
      or it replaced the old one in a rotation) is new, and is read from its start.
    - Rotation by rename (the path now names another inode): the rest of the old file is read first, then
      the new file from its start. While the path is missing the old file is still followed, since a daemon
      keeps writing to the file it has open.
    - Truncation (copytruncate, Debian's logrotate setting for libvirtd): a size below the read offset, or a
      changed first line, means the file was emptied; reading starts over at 0. Lines written between
      logrotate's copy and its truncate are lost, as logrotate documents for copytruncate.
    - A missing file is not an error: read_new() returns nothing and `missing` is True until it appears
      (other errors, such as no permission to read it, are raised).
    - Invalid UTF-8 is replaced (U+FFFD); a last line without its newline is kept until it is completed, and
      so is the record before it, whose continuation lines may still be on their way.
    """

    HEAD_BYTES = 128  # compared on every read to notice a truncated-and-rewritten file
    MAX_PENDING_BYTES = 1 << 20  # a "line" longer than this is taken as it is rather than buffered forever
    MAX_READ_BYTES = 16 << 20  # per read_new() call; the rest comes on the next call

    def __init__(self, path: str | Path, from_start: bool = False):
        self.path = Path(path)
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._offset = 0
        self._head = b""
        self._pending = b""
        self._at_eof = False
        self.missing = False
        self.rotations_total = 0
        self.truncations_total = 0
        self._open(at_end=not from_start)

    def _open(self, at_end: bool) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                self.missing = True
                return False
            raise  # no permission, for example: a configuration error the caller reports
        info = os.fstat(fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)
        self._offset = info.st_size if at_end else 0
        self._head = os.pread(fd, self.HEAD_BYTES, 0) if at_end else b""
        self._pending = b""
        self.missing = False
        return True

    def close(self) -> None:
        """Close the file; a later read_new() opens the path again and reads it from its start."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._identity = None

    def __enter__(self) -> "LogTailer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _path_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _truncated(self) -> bool:
        """Return True when the open file was emptied under us (smaller than the offset, or a new first line)."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        head = os.pread(self._fd, len(self._head), 0) if self._head else b""
        return size < self._offset or head != self._head

    def _read_open_file(self, budget: int) -> bytes:
        """Read from the offset to the end of the open file (at most `budget` bytes); note whether at its end."""
        assert self._fd is not None
        chunks = []
        self._at_eof = False
        while budget > 0:
            chunk = os.pread(self._fd, min(budget, 1 << 20), self._offset)
            if not chunk:
                self._at_eof = True
                break
            if len(self._head) < self.HEAD_BYTES and self._offset == len(self._head):
                self._head += chunk[: self.HEAD_BYTES - len(self._head)]
            self._offset += len(chunk)
            budget -= len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)

    def read_new(self) -> tuple[list[LogRecord], int]:
        """Return the records appended since the last call and the count of malformed lines among them."""
        if self._fd is None and not self._open(at_end=False):
            return [], 0
        complete = b""
        if self._truncated():
            self.truncations_total += 1
            complete = self._take(b"", final=True)  # what was held back is all the old content will give
            self._offset, self._head = 0, b""
        complete += self._take(self._read_open_file(self.MAX_READ_BYTES), final=False)
        identity = self._path_identity()
        self.missing = identity is None
        if identity is not None and identity != self._identity and self._at_eof:
            # rotated: finish the old file (including what was written to it meanwhile), then read the new one
            self.rotations_total += 1
            complete += self._take(self._read_open_file(self.MAX_READ_BYTES), final=True)
            self.close()
            if self._open(at_end=False):
                complete += self._take(self._read_open_file(self.MAX_READ_BYTES), final=False)
        lines = complete.decode("utf-8", errors="replace").split("\n")
        if lines[-1] == "":
            lines.pop()
        return parse_lines(lines)

    def _take(self, data: bytes, final: bool) -> bytes:
        """Return the complete lines of pending+data; keep an unfinished tail (and the record it may continue)."""
        data = self._pending + data
        self._pending = b""
        if not data or data.endswith(b"\n"):
            return data
        if final:
            return data + b"\n"
        cut = data.rfind(b"\n") + 1
        if not is_header_start(data[cut:].decode("utf-8", errors="replace")):
            # the unfinished line may continue the record before it: hold that record back too
            start = _last_header_start(data[:cut])
            cut = start if start is not None else cut
        if len(data) - cut > self.MAX_PENDING_BYTES:
            return data + b"\n"  # no writer leaves a line this long unfinished: take it as it is
        self._pending = data[cut:]
        return data[:cut]


def _last_header_start(data: bytes) -> int | None:
    """Return the offset of the last line in `data` (complete lines) that starts a record, or None."""
    end = len(data)
    while end > 0:
        start = data.rfind(b"\n", 0, end - 1) + 1
        if parse_line(data[start:end].decode("utf-8", errors="replace")) is not None:
            return start
        end = start
    return None
