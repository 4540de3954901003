"""The forensics bundle's stored form: small bundles as JSON, big ones as zlib+base64 within the store's limit,
incompressible ones shrunk (oldest log lines, then kernel stacks, then whole sections) until they fit; garbage
refused with BundleError; the text a person reads; and a round trip through a real DuckDB store."""

from __future__ import annotations

import base64
import json
import random
import zlib

import pytest

from tsdb import Point, open_store
from tsdb.point import printable
from tsdb.forensics import (JSON, MAX_STORED_BYTES, ZLIB_BASE64, BundleError, decode_bundle, encode_bundle,
                            render_bundle, shrink_bundle)
from tsdb.point import clean_name

HOSTILE_GUEST = 'web 1,"x" & \'y\' <script>alert(1)</script> \\ ü✓'
HOSTILE_THREAD = "w) R (ü\n'\""
KERNEL_LINE = ("rpc-libvirtd[8146]: segfault at 7f6a57d2f0fe ip 00007f6a57d2f0fe sp 00007f6a53bfe9b0 error 15 in "
               "libvirt.so.0.9000.0[32f0fe,7f6a57d2f000+14c000] likely on CPU 0 (core 0, socket 0)")
CAUSE = (f"libvirtd on hv-07 hung 45 s: 10 of 10 workers busy, 8 calls queued; they wait on guest '{HOSTILE_GUEST}' "
         f"whose QEMU is stopped (state T)")
STACK = ["futex_wait_queue+0x6c/0xa0", "futex_wait+0x175/0x260", "do_futex+0x106/0x1b0",
         "__x64_sys_futex+0x8e/0x1d0", "do_syscall_64+0x82/0x190", "entry_SYSCALL_64_after_hwframe+0x76/0x7e"]


def log_line(n: int) -> str:
    return (f"2026-12-05 01:22:{n % 60:02d}.{n % 1000:03d}+0000: {8100 + n % 10}: warning : "
            f"virDomainObjBeginJobInternal:468 : Cannot start job (query, none, none) in API "
            f"remoteDispatchDomainMemoryStats for domain {HOSTILE_GUEST}; current job is (query, none, none) owned "
            f"by (8146 remoteDispatchDomainMemoryStats, 0 <null>, 0 <null> (flags=0x0)) for ({n}s, 0s, 0s)")


def make_bundle(log_lines: list[str] | None = None, threads: int = 3, kernel_lines: list[str] | None = None,
                stack: list[str] | None = None) -> dict:
    """A bundle as the agent builds it (collector.forensics), with hostile names in it."""
    return {
        "version": 1, "host": "hv-07", "trigger": "hang", "time_ns": 1_796_433_765_600_000_000,
        "time": "2026-12-05T01:22:45.600000Z", "cause": CAUSE,
        "diagnosis": {"hang_seconds": 45.0, "workers_busy": 10},
        "steps": [{"name": "process", "status": "ok", "ms": 0.4}, {"name": "threads", "status": "ok", "ms": 1.7},
                  {"name": "daemon_log", "status": "cut", "ms": 2000.1,
                   "error": "no result within its deadline of 2 s: abandoned"}],
        "process": {"pid": 900, "threads": threads, "state": "S"},
        "threads": [{"tid": 900 + n, "name": HOSTILE_THREAD if n == 1 else "rpc-libvirtd",
                     "state": "D" if n == 2 else "S", "wchan": "futex_do_wait" if n != 2 else None,
                     "syscall": "futex" if n != 2 else None, "stack": list(STACK if stack is None else stack)}
                    for n in range(threads)],
        "pool": {"workers_max": 10, "workers_free": 0, "job_queue_depth": 8},
        "clients": [{"id": 7, "transport": "unix", "pid": 4242, "process": "memstat, \"poller\""}],
        "job_holders": [{"domain": HOSTILE_GUEST, "description": f"guest {HOSTILE_GUEST!r}: job held 30 s"}],
        "daemon_log": list(log_lines or []),
        "kernel_log": list(kernel_lines or []),
        "kernel_line": KERNEL_LINE,
        "qemu": [{"domain": HOSTILE_GUEST, "pid": 5555, "state": "T"}, {"domain": "calm", "pid": 5556, "state": "S"}],
    }


def random_lines(count: int, width: int, seed: int = 7) -> list[str]:
    """Lines of printable random text: zlib cannot make them much smaller, and base64 makes them bigger."""
    rng = random.Random(seed)
    alphabet = [chr(code) for code in range(33, 127)]
    return ["".join(rng.choices(alphabet, k=width)) for _ in range(count)]


def json_size(bundle: dict) -> int:
    return len(json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


# --- encoding -----------------------------------------------------------------------------------------------------

def test_a_small_bundle_is_stored_as_its_json_and_decodes_back_equal():
    bundle = make_bundle([log_line(n) for n in range(5)])
    text, encoding = encode_bundle(bundle)
    assert encoding == JSON
    assert json.loads(text) == bundle
    assert decode_bundle(text, encoding) == bundle


def test_a_200_kb_bundle_is_stored_compressed_within_the_limit_and_decodes_back_equal():
    bundle = make_bundle([log_line(n) for n in range(600)], threads=200)
    assert json_size(bundle) > 200_000
    text, encoding = encode_bundle(bundle)
    assert encoding == ZLIB_BASE64
    assert len(text.encode("utf-8")) <= MAX_STORED_BYTES
    assert text.isascii()
    assert decode_bundle(text, encoding) == bundle  # nothing was dropped: no `shrunk`


def test_a_bundle_exactly_at_the_limit_stays_json_and_one_byte_more_is_compressed():
    bundle = make_bundle(["x"])
    size = json_size(bundle)
    assert encode_bundle(bundle, limit=size)[1] == JSON
    assert encode_bundle(bundle, limit=size - 1)[1] == ZLIB_BASE64


def test_an_incompressible_huge_bundle_is_shrunk_oldest_log_lines_first_until_it_fits():
    lines = random_lines(400, 1000)
    bundle = make_bundle(lines, kernel_lines=random_lines(40, 1000, seed=8))
    assert json_size(bundle) > 400_000
    text, encoding = encode_bundle(bundle)
    assert len(text.encode("utf-8")) <= MAX_STORED_BYTES
    stored = decode_bundle(text, encoding)
    kept = stored["daemon_log"]
    assert 0 < len(kept) < len(lines) and kept == lines[-len(kept):]  # the newest lines, in order
    assert stored["shrunk"][0] == "daemon_log: oldest 200 lines dropped"
    assert all(note.startswith(("daemon_log: ", "kernel_log: ")) for note in stored["shrunk"])
    assert {key: value for key, value in stored.items() if key not in ("daemon_log", "kernel_log", "shrunk")} == {
        key: value for key, value in bundle.items() if key not in ("daemon_log", "kernel_log")}
    assert "shrunk" not in bundle  # the caller's bundle is left as it was
    assert len(bundle["daemon_log"]) == 400


def test_the_shrinking_stops_as_soon_as_the_bundle_fits():
    lines = random_lines(64, 1000)  # random lines: compressed and in base64 they are no smaller
    bundle = make_bundle(lines)
    halved = {**make_bundle(lines[32:]), "shrunk": ["daemon_log: oldest 32 lines dropped"]}
    text, encoding = encode_bundle(bundle, limit=json_size(halved))
    assert (encoding, decode_bundle(text, encoding)) == (JSON, halved)  # one halving was enough
    text, encoding = encode_bundle(bundle, limit=json_size(halved) - 1)
    assert decode_bundle(text, encoding)["shrunk"] == ["daemon_log: oldest 32 lines dropped",
                                                       "daemon_log: oldest 16 lines dropped"]


def test_a_bundle_that_does_not_fit_even_without_logs_and_stacks_is_refused():
    bundle = make_bundle(random_lines(100, 100))
    bundle["cause"] = random_lines(1, 5000)[0]
    with pytest.raises(BundleError, match="does not fit in 2000 bytes"):
        encode_bundle(bundle, limit=2000)


def notes_of_shrinking(bundle: dict) -> list[str]:
    """Shrink until nothing is left to drop; return the notes of each step, in order."""
    steps = 0
    while (smaller := shrink_bundle(bundle)) is not None:
        bundle = smaller
        steps += 1
        assert steps < 100
    return bundle.get("shrunk", [])


def test_shrinking_halves_the_daemon_log_then_the_kernel_log_then_drops_stacks_then_whole_sections():
    bundle = make_bundle([f"d{n}" for n in range(100)], kernel_lines=[f"k{n}" for n in range(30)])
    bundle["gdb"] = "Thread 1 (LWP 900):\n#0 futex_wait"
    assert notes_of_shrinking(bundle) == [
        "daemon_log: oldest 50 lines dropped", "daemon_log: oldest 25 lines dropped",
        "daemon_log: oldest 12 lines dropped",  # 13 left: at most 20 are kept whole
        "kernel_log: oldest 15 lines dropped",
        "threads: kernel stacks dropped",
        "daemon_log: dropped", "kernel_log: dropped", "clients: dropped", "gdb: dropped",
    ]


def test_a_bundle_with_nothing_to_drop_cannot_be_shrunk():
    bundle = {"version": 1, "cause": "x", "threads": [{"tid": 1, "stack": None}], "daemon_log": [], "gdb": ""}
    assert shrink_bundle(bundle) is None


# --- decoding garbage ---------------------------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


GARBAGE = {
    "not JSON at all": ("libvirtd hung", JSON),
    "empty text": ("", JSON),
    "JSON that is not an object": ("[1, 2, 3]", JSON),
    "a JSON string": ('"a bundle"', JSON),
    "compressed text stored as json": (b64(zlib.compress(b'{"cause": "x"}')), JSON),
    "cut JSON": ('{"cause": "x", "threads": [', JSON),
    "not base64": ("%%% not base64 %%%", ZLIB_BASE64),
    "base64 with non-ASCII": ("eJzLSM3JyQcABiwCFQ==ü", ZLIB_BASE64),
    "base64 of something that is not zlib": (b64(b"plain bytes, not deflate"), ZLIB_BASE64),
    "a cut zlib stream": (b64(zlib.compress(b'{"cause": "x"}')[:-4]), ZLIB_BASE64),
    "zlib of bytes that are not UTF-8": (b64(zlib.compress(b'{"cause": "\xff\xfe"}')), ZLIB_BASE64),
    "zlib of a JSON list": (b64(zlib.compress(b"[1]")), ZLIB_BASE64),
    "JSON stored as zlib+base64": ('{"cause": "x"}', ZLIB_BASE64),
    "an unknown encoding": ('{"cause": "x"}', "gzip"),
    "an empty encoding": ('{"cause": "x"}', ""),
}


@pytest.mark.parametrize("text, encoding", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_refused_as_no_forensics_bundle(text, encoding):
    with pytest.raises(BundleError):
        decode_bundle(text, encoding)


def test_an_unknown_encoding_is_named_in_the_error():
    with pytest.raises(BundleError, match="'gzip'"):
        decode_bundle("{}", "gzip")


# --- the text for a person ----------------------------------------------------------------------------------------

def test_the_text_shows_the_cause_the_kernel_line_each_thread_and_hostile_names_on_one_line():
    bundle = make_bundle([log_line(1), log_line(2)], kernel_lines=[f"2026-12-05T01:22:40.000000Z {KERNEL_LINE}"])
    text = render_bundle(bundle)
    lines = text.splitlines()
    assert lines[0] == "virtwatch forensics: hang on hv-07 at 2026-12-05T01:22:45.600000Z"
    assert lines[1] == f"cause: {CAUSE}"
    assert f"kernel: {KERNEL_LINE}" in lines
    assert "daemon_log: cut in 2000.1 ms (no result within its deadline of 2 s: abandoned)" in lines
    threads_at = lines.index("== threads (3)")
    assert lines[threads_at + 1:threads_at + 1 + 3 * (1 + len(STACK))] == [
        "900 'rpc-libvirtd' state S wchan futex_do_wait syscall futex", *(f"    {frame}" for frame in STACK),
        "901 'w) R (ü\\n'\"' state S wchan futex_do_wait syscall futex", *(f"    {frame}" for frame in STACK),
        "902 'rpc-libvirtd' state D wchan - syscall -", *(f"    {frame}" for frame in STACK),
    ]
    # names are shown as they are, but on one line: a newline in a name cannot forge a line of the bundle
    assert f"5555 state T guest '{printable(HOSTILE_GUEST)}'" in lines
    assert log_line(1) in lines and log_line(2) in lines  # log lines as they were read
    assert f"2026-12-05T01:22:40.000000Z {KERNEL_LINE}" in lines
    assert 'id=7, transport=unix, pid=4242, process=memstat, "poller"' in lines
    assert f"guest {HOSTILE_GUEST!r}: job held 30 s" in lines
    assert text.count(HOSTILE_GUEST) >= 2  # the cause and the log lines carry it unchanged


def test_the_text_of_a_shrunk_bundle_says_what_was_dropped_and_empty_logs_say_nothing():
    bundle = {**make_bundle(), "shrunk": ["daemon_log: oldest 100 lines dropped"], "threads": []}
    del bundle["kernel_line"]
    text = render_bundle(bundle)
    assert "(shrunk to fit the store: daemon_log: oldest 100 lines dropped)" in text.splitlines()
    assert "== threads (0)" in text and "kernel: " not in text
    assert text.count("(nothing)") == 2  # daemon log and kernel log


def test_the_text_of_a_decoded_compressed_bundle_equals_the_text_of_the_original():
    bundle = make_bundle([log_line(n) for n in range(600)], threads=200)
    assert render_bundle(decode_bundle(*encode_bundle(bundle))) == render_bundle(bundle)


# --- through a real store -----------------------------------------------------------------------------------------

STORE_HOSTS = ["hv-07", 'hv 07,"x"=y', "数据库-主 ✓ 🚀", "<script>alert(1)</script>", "a\\b c", "it's"]


def test_the_bundle_point_reads_back_byte_exact_from_a_duckdb_store_with_hostile_hosts_and_both_encodings(tmp_path):
    small = make_bundle([log_line(n) for n in range(3)])
    big = make_bundle([log_line(n) for n in range(600)], threads=200)
    written = {}
    points = []
    for n, host in enumerate(STORE_HOSTS):
        for trigger, bundle in (("hang", small), ("segfault", big)):
            text, encoding = encode_bundle({**bundle, "host": host, "trigger": trigger})
            written[(host, trigger)] = (text, encoding)
            points.append(Point("forensics", {"host": host, "trigger": trigger},
                                {"bundle": text, "encoding": encoding, "cause": CAUSE}, 1_796_433_765_600_000_000 + n))
    assert {encoding for _text, encoding in written.values()} == {JSON, ZLIB_BASE64}
    with open_store(f"duckdb://{tmp_path}/s.duckdb") as store:
        assert store.write(points) == len(points)
        frame = store.query("forensics", ["bundle", "encoding"], 0, 2**62, group_by=["host", "trigger"])
    read = {(row.host, row.trigger): (row.bundle, row.encoding) for row in frame.itertuples()}
    assert read == written
    for (host, trigger), (text, encoding) in read.items():
        assert (decode_bundle(text, encoding)["host"], decode_bundle(text, encoding)["trigger"]) == (host, trigger)


def test_a_host_name_with_a_line_break_is_stored_under_its_cleaned_name_but_its_bundle_keeps_it(tmp_path):
    host = "hv\n07"
    text, encoding = encode_bundle({**make_bundle(), "host": host})
    with open_store(f"duckdb://{tmp_path}/s.duckdb") as store:
        store.write([Point("forensics", {"host": host, "trigger": "manual"}, {"bundle": text, "encoding": encoding},
                           1)])
        frame = store.query("forensics", ["bundle", "encoding"], 0, 2**62, group_by=["host", "trigger"])
    assert list(frame["host"]) == [clean_name(host)] == ["hv 07"]
    assert list(frame["bundle"]) == [text]
    assert decode_bundle(frame["bundle"][0], frame["encoding"][0])["host"] == host
