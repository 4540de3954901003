"""Known failure evidence for the dashboard tests: the agent's diagnoses and forensics bundles of the planted fleet.

kvm-hung-02 hangs from 30 minutes before now (a diagnosis at hang_start and every minute since, a `hang`
bundle over 60 KB, stored compressed); kvm-restart-04 segfaulted and restarted 2 minutes before now (a small
`segfault` bundle holding the kernel's segfault line); the hostile host has a `manual` bundle; kvm-down-03 has a
record cut short that cannot be decoded. Guest names are hostile on purpose.
"""

from __future__ import annotations

import json

from tsdb import Point
from tsdb.forensics import encode_bundle

MINUTE_NS = 60 * 10**9
HUNG_HOST, SEGFAULT_HOST, CORRUPT_HOST = "kvm-hung-02", "kvm-restart-04", "kvm-down-03"
#: quotes, a comma, a backslash, markup and a non-ASCII letter: all of it must show as text
HOSTILE_GUEST = 'web "1", <script>window.pwned=1</script> \\ ✓'
HANG_MINUTES = 30
#: bundle times carry nanoseconds, so a read that rounds them finds nothing
HANG_BUNDLE_OFFSET_NS = 123_456_789
SEGFAULT_BUNDLE_OFFSET_NS = 987_654_321
KERNEL_LINE = ("libvirtd[4711]: segfault at 0 ip 0000000000000000 sp 00007f3a2c7fd7c8 error 14 in "
               "libvirt.so.0.10000.0[7f3a4e200000+1b4000]")
THREAD_LINE = "4712 'rpc-worker' state S wchan futex_wait_queue syscall 202"
HUNG_CAUSE = ("libvirtd on kvm-hung-02 hung {duration}: 20 of 20 workers busy, 7 calls queued; they wait on guest "
              f"'{HOSTILE_GUEST}' whose QEMU is stopped (state T); 14 connections from memstat-poller (pid 4242)")
SEGFAULT_CAUSE = ("libvirtd on kvm-restart-04 crashed: segfault in thread rpc-worker (tid 4712) in libvirt.so.0; "
                  "restarted as pid 4790 after 3 s")
MANUAL_CAUSE = "libvirtd answered: 2 of 20 workers busy, no calls queued (captured on request)"


def hang_cause(seconds: int) -> str:
    """Return kvm-hung-02's cause sentence after `seconds` of hang."""
    duration = f"{seconds} s" if seconds < 60 else f"{seconds // 60} min"
    return HUNG_CAUSE.format(duration=duration)


def bundle(host: str, trigger: str, time_ns: int, cause: str, *, log_lines: int = 40,
           kernel: tuple[str, ...] = ()) -> dict:
    """Return a bundle as the agent builds it: steps, process, threads with kernel stacks, pool, clients, job
    holders, daemon and kernel log lines, the QEMU processes (one with a hostile name) and the diagnosis."""
    threads = [{"tid": 4711, "name": "libvirtd", "state": "S", "wchan": "do_poll", "syscall": "7",
                "stack": ["[<0>] do_poll.constprop.0+0x23e/0x3a0", "[<0>] do_sys_poll+0x166/0x260",
                          "[<0>] __x64_sys_poll+0xb5/0x150", "[<0>] do_syscall_64+0x5b/0x110"]}]
    for index in range(20):
        threads.append({"tid": 4712 + index, "name": "rpc-worker", "state": "S", "wchan": "futex_wait_queue",
                        "syscall": "202", "stack": ["[<0>] futex_wait_queue+0x60/0x90",
                                                    "[<0>] __futex_wait+0x13d/0x1c0",
                                                    "[<0>] futex_wait+0x74/0x120",
                                                    "[<0>] do_futex+0x105/0x1b0",
                                                    "[<0>] __x64_sys_futex+0x8e/0x1d0"]})
    daemon_log = [f"2026-01-31 08:{index // 60:02d}:{index % 60:02d}.{index * 7919 % 1000:03d}+0000: "
                  f"{4712 + index % 20}: warning : virDomainObjBeginJobInternal:{9000 + index}: Cannot start job "
                  f"(query, none, none) for domain {HOSTILE_GUEST}; current job is (modify, none, none) owned by "
                  f"(4712 remoteDispatchDomainBlockJobAbort, 0 <null>, 0 <null> (flags=0x0)) for ({index + 30}s, "
                  f"0s, 0s)" for index in range(log_lines)]
    return {
        "version": 1, "host": host, "trigger": trigger, "time": time_ns, "cause": cause,
        "steps": [{"name": "process", "status": "ok", "ms": 3.2}, {"name": "threads", "status": "ok", "ms": 41.7},
                  {"name": "admin_api", "status": "ok", "ms": 12.0}, {"name": "daemon_log", "status": "ok", "ms": 8.5},
                  {"name": "kernel_log", "status": "ok", "ms": 2.1}, {"name": "qemu", "status": "ok", "ms": 5.9}],
        "process": {"pid": 4711, "state": "S", "threads": len(threads), "rss_bytes": 48 * 2**20, "open_fds": 211},
        "threads": threads,
        "pool": {"workers_min": 5, "workers_max": 20, "workers_current": 20, "workers_free": 0, "job_queue_depth": 7},
        "clients": [{"process": "memstat-poller", "pid": 4242, "connections": 14},
                    {"process": "virtwatch agent", "pid": 812, "connections": 2}],
        "job_holders": [{"description": f"thread 4712 remoteDispatchDomainBlockJobAbort holds the job of guest "
                                        f"'{HOSTILE_GUEST}' for 43 s"}],
        "daemon_log": daemon_log,
        "kernel_log": list(kernel),
        "qemu": [{"pid": 5120, "state": "T", "domain": HOSTILE_GUEST}, {"pid": 5177, "state": "S", "domain": "db-2"}],
        "diagnosis": {"cause": cause, "workers_busy": 20, "workers_max": 20},
    }


def forensics_point(record: dict, *, capture_ms: float = 84.3, steps_cut: str = "") -> Point:
    """Return the `forensics` point holding a bundle, as the agent writes it."""
    text, encoding = encode_bundle(record)
    size = len(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return Point("forensics", {"host": record["host"], "trigger": record["trigger"]},
                 {"bundle": text, "encoding": encoding, "size_bytes": size, "capture_ms": capture_ms,
                  "steps_cut": steps_cut, "cause": record["cause"],
                  "file": f"/var/lib/virtwatch/forensics/{record['trigger']}-{record['time']}.json"},
                 record["time"])


def diagnosis_point(host: str, trigger: str, time_ns: int, cause: str, **fields) -> Point:
    """Return a `diagnosis` point with the cause and the given figures."""
    return Point("diagnosis", {"host": host, "trigger": trigger}, {"cause": cause, **fields}, time_ns)


def hang_bundle_time(now_ns: int) -> int:
    """Return the time of kvm-hung-02's `hang` bundle (a minute into the hang)."""
    return now_ns - (HANG_MINUTES - 1) * MINUTE_NS + HANG_BUNDLE_OFFSET_NS


def segfault_bundle_time(now_ns: int) -> int:
    """Return the time of kvm-restart-04's `segfault` bundle."""
    return now_ns - 2 * MINUTE_NS + SEGFAULT_BUNDLE_OFFSET_NS


def manual_bundle_time(now_ns: int) -> int:
    """Return the time of the hostile host's `manual` bundle."""
    return now_ns - 50 * MINUTE_NS + 1


def corrupt_bundle_time(now_ns: int) -> int:
    """Return the time of kvm-down-03's record that cannot be decoded."""
    return now_ns - 19 * MINUTE_NS


def hang_figures(seconds: int) -> dict:
    """Return kvm-hung-02's diagnosis figures after `seconds` of hang."""
    return {"hang_seconds": float(seconds), "process_state": "S", "threads": 22, "threads_running": 0,
            "threads_disk_wait": 0, "threads_stopped": 0, "threads_not_sleeping": "none",
            "workers_busy": 20, "workers_max": 20, "workers_priority": 5, "job_queue_depth": 7,
            "pool_age_seconds": 4.0, "clients_listed": 16, "top_client": "memstat-poller (pid 4242)",
            "top_client_connections": 14, "agent_connections": 2,
            "clients_by_process": "memstat-poller (pid 4242): 14, virtwatch agent (pid 812): 2",
            "job_domain": HOSTILE_GUEST, "job_waiting_api": "remoteDispatchDomainGetBlockInfo",
            "job_holder_api": "remoteDispatchDomainBlockJobAbort", "job_holder_thread": 4712,
            "job_held_by_agent": 0, "job_age_seconds": float(seconds + 13), "stuck_guests": 1,
            "stuck_guest_names_json": json.dumps([HOSTILE_GUEST], ensure_ascii=False)}


def plant_forensics(store, now_ns: int, hostile_host: str) -> None:
    """Write the planted diagnoses and forensics records ending at now_ns."""
    points = []
    start = now_ns - HANG_MINUTES * MINUTE_NS
    points.append(diagnosis_point(HUNG_HOST, "hang_start", start, hang_cause(5), **hang_figures(5)))
    for minute in range(1, HANG_MINUTES):
        seconds = minute * 60
        points.append(diagnosis_point(HUNG_HOST, "hang", start + minute * MINUTE_NS, hang_cause(seconds),
                                      **hang_figures(seconds)))
    hang_time = hang_bundle_time(now_ns)
    points.append(forensics_point(bundle(HUNG_HOST, "hang", hang_time, hang_cause(60), log_lines=400),
                                  capture_ms=1214.0, steps_cut="gdb"))
    crash_time = segfault_bundle_time(now_ns)
    points.append(diagnosis_point(SEGFAULT_HOST, "segfault", crash_time, SEGFAULT_CAUSE, hang_seconds=0.0,
                                  process_state="gone", threads=0, workers_busy=3, workers_max=20,
                                  job_queue_depth=0, stuck_guests=0, stuck_guest_names_json="[]"))
    points.append(diagnosis_point(SEGFAULT_HOST, "restart", crash_time + 3 * 10**9, SEGFAULT_CAUSE,
                                  hang_seconds=0.0, process_state="S", threads=22, workers_busy=0,
                                  workers_max=20, job_queue_depth=0, stuck_guests=0, stuck_guest_names_json="[]"))
    points.append(forensics_point(bundle(SEGFAULT_HOST, "segfault", crash_time, SEGFAULT_CAUSE,
                                         kernel=("kvm: zapping shadow pages for mmio generation wraparound",
                                                 KERNEL_LINE, "Code: Unable to access opcode bytes at "
                                                 "0xffffffffffffffd6.")), capture_ms=96.0))
    points.append(forensics_point(bundle(hostile_host, "manual", manual_bundle_time(now_ns), MANUAL_CAUSE),
                                  capture_ms=70.0))
    broken, _ = encode_bundle(bundle(CORRUPT_HOST, "restart", corrupt_bundle_time(now_ns), "cut short",
                                     log_lines=400))
    points.append(Point("forensics", {"host": CORRUPT_HOST, "trigger": "restart"},
                        {"bundle": broken[:200], "encoding": "zlib+base64", "size_bytes": 91234, "capture_ms": 300.0,
                         "steps_cut": "", "cause": "libvirtd on kvm-down-03 restarted", "file": ""},
                        corrupt_bundle_time(now_ns)))
    store.write(points)
