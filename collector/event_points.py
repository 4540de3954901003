"""Event points: the one way the agent turns something that happened into a point of `event`.

Every event message is bounded here, whatever it came from (a libvirtd log line, a guest's name, QEMU's
stderr relayed by the daemon, a thread name from the kernel log: text that others control):

- at most MAX_MESSAGE_BYTES of UTF-8, cut on a character boundary; a cut message ends with a marker saying
  how many bytes of the original were dropped (`… (cut: 15728640 bytes)`);
- on one line: control characters are escaped the way tsdb.point.printable shows names (`\\n`, `\\r`, `\\t`,
  `\\xNN` for the others below 0x20 and DEL), and so are the C1 controls (U+0080 to U+009F) and the Unicode
  line and paragraph separators, which some terminals and log viewers also take for the start of a line.
"""

from __future__ import annotations

import re

from tsdb import Point
from tsdb.schema import EVENT_KINDS

#: the most bytes (UTF-8) of an event's message, the cut marker included; also libvirtd log lines'
#: (collector.daemon_log.LogTailer.MAX_LINE_BYTES), so one line of a flooded log costs no more than this
MAX_MESSAGE_BYTES = 4096

_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7f, *range(0x80, 0xa0)]}
_ESCAPES |= {0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}
_MARKER_AT_END = re.compile(r" … \(cut: (\d+) bytes\)\Z")


def cut_marker(bytes_cut: int) -> str:
    """Return the text that ends a message cut short: how many bytes of the original were dropped."""
    return f" … (cut: {bytes_cut} bytes)"


def one_line(text: str) -> str:
    """Return `text` with its control characters and line separators escaped, so that it shows on one line."""
    return text if text.isprintable() else text.translate(_ESCAPES)


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def bounded_message(text: str, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    """Return `text` on one line and at most `max_bytes` of UTF-8, ending in a cut marker when it was cut.

    The marker counts the bytes of the original text that were dropped; a text that already ends in a marker
    (a log line the log reader cut) is counted as the original it stands for. Returns a bounded text as it is.
    """
    head = text[: max_bytes + 1]  # every character is at least one byte: no more than this can fit
    line = one_line(head)
    if len(head) == len(text) and _utf8_length(line) <= max_bytes:
        return line
    earlier = 0
    marker = _MARKER_AT_END.search(text, max(0, len(text) - 64))
    if marker is not None:
        earlier, text = int(marker[1]), text[: marker.start()]
        head = text[: max_bytes + 1]
    total = _utf8_length(text)
    budget = max(0, max_bytes - _utf8_length(cut_marker(total + earlier)))
    kept, used = 0, 0
    for character in head:
        size = _utf8_length(_ESCAPES.get(ord(character), character))
        if used + size > budget:
            break
        kept, used = kept + 1, used + size
    return one_line(text[:kept]) + cut_marker(total - _utf8_length(text[:kept]) + earlier)


def event_point(host: str, kind: str, message: str, time_ns: int, domain: str | None = None,
                severity: str | None = None, **fields) -> Point:
    """Return an `event` point of `kind` (tsdb.schema.EVENT_KINDS gives its default severity); its message
    bounded (`bounded_message`)."""
    tags = {"host": host, "kind": kind, "severity": severity or EVENT_KINDS[kind].severity}
    if domain is not None:
        tags["domain"] = domain
    return Point("event", tags, {"message": bounded_message(message), "count": 1, **fields}, time_ns)
