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

from collector.event_points import MAX_MESSAGE_BYTES, cut_marker

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
    - Bounded memory: the file is read in chunks of READ_CHUNK_BYTES; a line longer than MAX_LINE_BYTES keeps
      its first MAX_LINE_BYTES (cut on a UTF-8 character boundary) and ends in collector.event_points'
      cut marker (`… (cut: N bytes)`); the rest of it is counted as it streams past, never held.
    """

    HEAD_BYTES = 128  # compared on every read to notice a truncated-and-rewritten file
    MAX_LINE_BYTES = MAX_MESSAGE_BYTES  # a longer line is cut: a 15 MiB line costs 4 KiB
    MAX_PENDING_BYTES = 1 << 20  # a record held back for its continuation is taken as it is beyond this
    MAX_READ_BYTES = 16 << 20  # per read_new() call; the rest comes on the next call
    READ_CHUNK_BYTES = 64 << 10  # per read() of the file

    def __init__(self, path: str | Path, from_start: bool = False):
        self.path = Path(path)
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._offset = 0
        self._head = b""
        self._line = bytearray()  # the unfinished last line: at most MAX_LINE_BYTES of it
        self._line_cut = 0  # bytes of the unfinished line dropped beyond MAX_LINE_BYTES
        self._held: list[bytes] = []  # the last record's lines, held while the unfinished line may continue it
        self._at_eof = False
        self.missing = False
        self.rotations_total = 0
        self.truncations_total = 0
        self.lines_cut_total = 0
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
        self._line, self._line_cut, self._held = bytearray(), 0, []
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

    def _read_lines(self, budget: int) -> list[bytes]:
        """Read from the offset towards the end of the open file (at most `budget` bytes, in chunks); return the
        lines completed (each at most MAX_LINE_BYTES and a cut marker); note whether at the file's end."""
        assert self._fd is not None
        lines: list[bytes] = []
        self._at_eof = False
        while budget > 0:
            chunk = os.pread(self._fd, min(budget, self.READ_CHUNK_BYTES), self._offset)
            if not chunk:
                self._at_eof = True
                break
            if len(self._head) < self.HEAD_BYTES and self._offset == len(self._head):
                self._head += chunk[: self.HEAD_BYTES - len(self._head)]
            self._offset += len(chunk)
            budget -= len(chunk)
            self._feed(chunk, lines)
        return lines

    def _feed(self, chunk: bytes, lines: list[bytes]) -> None:
        """Add `chunk` to the unfinished line, keeping at most MAX_LINE_BYTES of it; append each line it ends."""
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end < 0 else end
            room = self.MAX_LINE_BYTES - len(self._line)
            if stop - start > room:
                self._line += chunk[start:start + room]
                self._line_cut += stop - start - room
            else:
                self._line += chunk[start:stop]
            if end < 0:
                return
            lines.append(self._finish_line())
            start = end + 1

    def _finish_line(self) -> bytes:
        """Return the unfinished line as a whole line (cut, with the marker, when it was too long) and forget it."""
        line, cut = bytes(self._line), self._line_cut
        self._line, self._line_cut = bytearray(), 0
        if not cut:
            return line
        self.lines_cut_total += 1
        keep = utf8_boundary(line)
        return line[:keep] + cut_marker(cut + len(line) - keep).encode("utf-8")

    def _flush(self) -> list[bytes]:
        """Return the unfinished line as a whole line: all that the content being left behind will give."""
        return [self._finish_line()] if self._line or self._line_cut else []

    def read_new(self) -> tuple[list[LogRecord], int]:
        """Return the records appended since the last call and the count of malformed lines among them."""
        if self._fd is None and not self._open(at_end=False):
            return [], 0
        lines, self._held = self._held, []
        if self._truncated():
            self.truncations_total += 1
            lines += self._flush()
            self._offset, self._head = 0, b""
        lines += self._read_lines(self.MAX_READ_BYTES)
        identity = self._path_identity()
        self.missing = identity is None
        if identity is not None and identity != self._identity and self._at_eof:
            # rotated: finish the old file (including what was written to it meanwhile), then read the new one
            self.rotations_total += 1
            lines += self._read_lines(self.MAX_READ_BYTES)
            lines += self._flush()
            self.close()
            if self._open(at_end=False):
                lines += self._read_lines(self.MAX_READ_BYTES)
        lines = self._hold_back(lines)
        return parse_lines([line.decode("utf-8", errors="replace") for line in lines])

    def _hold_back(self, lines: list[bytes]) -> list[bytes]:
        """Return the lines to parse now; while a line is unfinished, keep back the record it may continue."""
        if not (self._line or self._line_cut) or is_header_start(self._line.decode("utf-8", errors="replace")):
            return lines
        start = _last_header_line(lines)
        if start is None or sum(len(line) for line in lines[start:]) > self.MAX_PENDING_BYTES:
            return lines  # nothing to continue, or more than any writer leaves waiting: take it as it is
        self._held = lines[start:]
        return lines[:start]


def utf8_boundary(data: bytes) -> int:
    """Return the length of the longest prefix of `data` that does not end inside a UTF-8 character."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte < 0x80:
            return end  # ASCII: the last character is whole
        if byte >= 0xC0:  # the lead byte of the last character: whole when all its bytes are there
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end if back >= needed else end - back
    return end  # no lead byte among the last four: not UTF-8 here, decoded with replacement as it is


def _last_header_line(lines: list[bytes]) -> int | None:
    """Return the index of the last line in `lines` that starts a record, or None."""
    for index in range(len(lines) - 1, -1, -1):
        if parse_line(lines[index].decode("utf-8", errors="replace")) is not None:
            return index
    return None
