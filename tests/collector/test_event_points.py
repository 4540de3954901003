"""Event messages are bounded in one place: at most 4 KiB of UTF-8, cut on a character with the bytes cut
counted, on one line; end to end, a 15 MiB libvirtd log line becomes one such event and one such log line."""

from __future__ import annotations

import logging

import pytest

from collector.agent import Agent
from collector.daemon_health import DaemonEvent, DaemonHealth
from collector.event_points import MAX_MESSAGE_BYTES, bounded_message, cut_marker, event_point, one_line
from collector.libvirt_source import LibvirtSource
from tsdb import open_store


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def test_a_short_plain_message_is_kept_as_it_is():
    text = 'domain "web-ünïcødé-01" 数据库 😀 stopped, a\\b=c'
    assert bounded_message(text) == text


@pytest.mark.parametrize("text, shown", [
    ("two\nlines", "two\\nlines"),
    ("cr\rtab\tnul\x00esc\x1b[31m", "cr\\rtab\\tnul\\x00esc\\x1b[31m"),
    ("del\x7f c1\x85\x9b", "del\\x7f c1\\x85\\x9b"),
    ("line\u2028para\u2029end", "line\\u2028para\\u2029end"),
])
def test_control_characters_and_line_separators_are_escaped_onto_one_line(text, shown):
    assert bounded_message(text) == one_line(text) == shown
    assert len(bounded_message(text).splitlines()) == 1


def test_a_long_message_is_cut_to_the_limit_with_the_bytes_cut_counted():
    text = "x" * (15 << 20)
    cut = bounded_message(text)
    assert size(cut) <= MAX_MESSAGE_BYTES
    kept, dropped = split_cut(cut)
    assert set(kept) == {"x"} and cut == kept + cut_marker(dropped) and dropped == len(text) - len(kept)


def split_cut(cut: str) -> tuple[str, int]:
    """Return what a cut message kept and the bytes it says were cut."""
    kept, _, marker = cut.rpartition(" … (cut: ")
    return kept, int(marker.split()[0])


def original_of(text: str, kept: str) -> str:
    """Return the start of `text` that shows as `kept` (escapes included), or fail."""
    shown = 0
    for count, character in enumerate(text):
        if shown == len(kept):
            assert one_line(text[:count]) == kept
            return text[:count]
        shown += len(one_line(character))
    raise AssertionError("kept is not a start of the text")


def test_a_cut_falls_on_a_character_boundary_and_never_splits_an_escape():
    for text in ["😀" * 2000, "a" + "😀" * 2000, "\x1b" * 3000, "é\n" * 3000, "a\u2028" * 3000]:
        cut = bounded_message(text)
        kept, dropped = split_cut(cut)
        assert size(cut) <= MAX_MESSAGE_BYTES and "\ufffd" not in cut
        assert size(original_of(text, kept)) + dropped == size(text)


def test_bounding_twice_changes_nothing():
    for text in ["short", "x" * 10000, "\n" * 5000, "ü" * 3000]:
        once = bounded_message(text)
        assert bounded_message(once) == once


def test_a_line_the_log_reader_cut_counts_the_bytes_it_dropped_too():
    line_cut_by_the_reader = "y" * 4000 + cut_marker(1000)  # stands for 5000 bytes
    cut = bounded_message("libvirtd log (a job lock timeout): " + line_cut_by_the_reader)
    kept, dropped = split_cut(cut)
    assert size(cut) <= MAX_MESSAGE_BYTES and cut.count("(cut: ") == 1
    assert dropped == size("libvirtd log (a job lock timeout): ") + 5000 - size(kept)


def test_every_event_point_carries_a_bounded_message():
    point = event_point("hv1", "log_error", "held\n" * 5000, 1)
    assert size(point.fields["message"]) <= MAX_MESSAGE_BYTES and "\n" not in point.fields["message"]


def test_a_daemon_event_is_bounded_when_it_is_made():
    event = DaemonEvent("log_lock_timeout", "warning", "a\nb" * 5000, 1)
    assert size(event.message) <= MAX_MESSAGE_BYTES and "\n" not in event.message


def test_a_15_mib_daemon_log_line_becomes_one_bounded_event_and_one_line_in_the_agents_log(tmp_path, caplog):
    log_file = tmp_path / "libvirtd.log"
    log_file.write_text("")
    health = DaemonHealth(None, None, log_file=log_file)
    message = ("Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatch"
               "DomainGetInfo) \x1b[2J\n" + "z" * (15 << 20))
    line = f"2026-11-23 20:02:49.561+0000: 21473: error : virDomainObjBeginJobInternal:468 : {message}\n"
    with open_store(f"duckdb://{tmp_path}/agent.duckdb") as store:
        agent = Agent(store, LibvirtSource("test:///default"), "hv1", daemon_health=health)
        agent.collect_and_write()
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write(line)
        with caplog.at_level(logging.WARNING, logger="virtwatch.agent"):
            assert agent.collect_and_write()
        events = store.events(0)
    health.close()
    assert events["kind"].tolist() == ["log_lock_timeout"]
    stored = events["message"].iloc[0]
    assert size(stored) <= MAX_MESSAGE_BYTES and "\n" not in stored and "\x1b" not in stored
    assert "cannot acquire state change lock" in stored and "\\x1b[2J\\nzzz" in stored
    kept, dropped = split_cut(stored)
    prefix = stored[: stored.index("Timed out during")]  # "libvirtd log (<what the signature is>): "
    assert size(original_of(prefix + message, kept)) + dropped == size(prefix + message)  # both cuts counted
    said = [r.getMessage() for r in caplog.records if "cannot acquire state change lock" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and size(said[0]) <= MAX_MESSAGE_BYTES
