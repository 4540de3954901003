"""Who holds a guest's job lock: the two libvirtd messages parsed in every wording libvirt has used, hostile
domain names, pairing by thread id, expiry with a fake clock, and the real log of a staged pool hang.

fixtures/logs/job-lock-pool-hang.log is the whole log of a real private libvirtd 9.0 (this sandbox) while
tests/faults.PoolHang held guest 'guest 2,"b"' for 65 s: two rounds of nine waiting workers giving up.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collector.daemon_log import LogRecord, LogTailer, parse_text
from collector.job_locks import JobHolder, JobLocks, parse_job_wait, parse_lock_timeout

LOGS = Path(__file__).parent / "fixtures" / "logs"
T0_NS = 1_796_000_000_000_000_000
SECOND_NS = 10**9

SNAPSHOT = ("Cannot start job (query, none, none) in API remoteDispatchDomainGetXMLDesc for domain win10; current job "
            "is (async nested, none, snapshot) owned by (66684 remoteDispatchDomainSnapshotCreateXML, 0 <null>, 66684 "
            "remoteDispatchDomainSnapshotCreateXML (flags=0x0)) for (30s, 0s, 30s)")


def holder(domain: str, waiting_api: str | None, waiting_job: str | None, holder_api: str | None,
           holder_thread: int | None, agent_api: str | None, held_by_agent: bool, job: str,
           age_seconds: float | None, time_ns: int = 0) -> JobHolder:
    return JobHolder(domain, waiting_api, waiting_job, holder_api, holder_thread, agent_api, held_by_agent, job,
                     age_seconds, time_ns)


# --- the job-wait warning, in every wording --------------------------------------------------------------------

JOB_WAITS = {
    "libvirt 9.0: a snapshot's async job holds the guest": (
        SNAPSHOT,
        holder("win10", "remoteDispatchDomainGetXMLDesc", "query, none, none", "remoteDispatchDomainSnapshotCreateXML",
               66684, None, False, "async nested, none, snapshot", 30.0)),
    "libvirt 9.0, real: a stopped guest's first memoryStats call holds it (hostile name)": (
        'Cannot start job (query, none, none) in API remoteDispatchDomainMemoryStats for domain guest 2,"b"; current '
        "job is (query, none, none) owned by (8146 remoteDispatchDomainMemoryStats, 0 <null>, 0 <null> (flags=0x0)) "
        "for (30s, 0s, 0s)",
        holder('guest 2,"b"', "remoteDispatchDomainMemoryStats", "query, none, none",
               "remoteDispatchDomainMemoryStats", 8146, None, False, "query, none, none", 30.0)),
    "the guest agent alone holds the guest": (
        "Cannot start job (none, query, none) in API remoteDispatchDomainGetFSInfo for domain db; current job is "
        "(none, query, none) owned by (0 <null>, 4242 remoteDispatchDomainGetFSInfo, 0 <null> (flags=0x0)) "
        "for (0s, 12s, 0s)",
        holder("db", "remoteDispatchDomainGetFSInfo", "none, query, none", "remoteDispatchDomainGetFSInfo", 4242,
               "remoteDispatchDomainGetFSInfo", True, "none, query, none", 12.0)),
    "the monitor and the guest agent both hold it": (
        "Cannot start job (modify, modify, none) in API remoteDispatchDomainSetTime for domain db; current job is "
        "(query, query, none) owned by (11 remoteDispatchDomainGetTime, 12 remoteDispatchDomainGetHostname, 0 <null> "
        "(flags=0x0)) for (40s, 35s, 0s)",
        holder("db", "remoteDispatchDomainSetTime", "modify, modify, none", "remoteDispatchDomainGetTime", 11,
               "remoteDispatchDomainGetHostname", True, "query, query, none", 40.0)),
    "only an async job (migration) holds it: its owner and age": (
        "Cannot start job (modify, none, none) in API remoteDispatchDomainSetVcpusFlags for domain db; current job "
        "is (none, none, migration out) owned by (0 <null>, 0 <null>, 555 remoteDispatchDomainMigratePerform3Params "
        "(flags=0x1a)) for (0s, 0s, 1200s)",
        holder("db", "remoteDispatchDomainSetVcpusFlags", "modify, none, none",
               "remoteDispatchDomainMigratePerform3Params", 555, None, False, "none, none, migration out", 1200.0)),
    "the waiting call has no API name (a driver thread)": (
        "Cannot start job (modify, none, none) in API <null> for domain db; current job is (query, none, none) "
        "owned by (7 remoteDispatchDomainGetInfo, 0 <null>, 0 <null> (flags=0x0)) for (31s, 0s, 0s)",
        holder("db", None, "modify, none, none", "remoteDispatchDomainGetInfo", 7, None, False, "query, none, none",
               31.0)),
    "libvirt 5 to 8.0: no 'in API'": (
        "Cannot start job (query, none, none) for domain db; current job is (modify, none, none) owned by "
        "(21474 remoteDispatchDomainBlockResize, 0 <null>, 0 <null> (flags=0x0)) for (31s, 0s, 0s)",
        holder("db", None, "query, none, none", "remoteDispatchDomainBlockResize", 21474, None, False,
               "modify, none, none", 31.0)),
    "libvirt 1.3 to 4: two jobs, owners with APIs, two ages": (
        "Cannot start job (query, none) for domain db; current job is (modify, none) owned by "
        "(21474 remoteDispatchDomainBlockResize, 0 <null>) for (45s, 0s)",
        holder("db", None, "query, none", "remoteDispatchDomainBlockResize", 21474, None, False, "modify, none",
               45.0)),
    "libvirt 1.2 and older: bare thread ids, no ages": (
        "Cannot start job (query, none) for domain db; current job is (none, migration out) owned by (0, 3131)",
        holder("db", None, "query, none", None, 3131, None, False, "none, migration out", None)),
    "a mixed old line (three waiting jobs, two current) with ';' in the name": (
        "Cannot start job (modify, none, none) for domain a; b; current job is (query, none) owned by (1, 0)",
        holder("a; b", None, "modify, none, none", None, 1, None, False, "query, none", None)),
    "the real-session guest with a unicode name, held by a bulk stats call": (
        "Cannot start job (query, none, none) in API remoteDispatchConnectGetAllDomainStats for domain web-ünïcødé-01; "
        "current job is (query, none, none) owned by (776 remoteDispatchConnectGetAllDomainStats, 0 <null>, 0 <null> "
        "(flags=0x0)) for (33s, 0s, 0s)",
        holder("web-ünïcødé-01", "remoteDispatchConnectGetAllDomainStats", "query, none, none",
               "remoteDispatchConnectGetAllDomainStats", 776, None, False, "query, none, none", 33.0)),
}


@pytest.mark.parametrize("message, expected", JOB_WAITS.values(), ids=JOB_WAITS.keys())
def test_a_job_wait_warning_names_guest_holder_waiter_and_age(message, expected):
    assert parse_job_wait(message) == expected


HOSTILE_NAMES = [
    'guest 2,"b"',
    "a; current job is (query, none, none) owned by (1 remoteDispatchX, 0 <null>, 0 <null> (flags=0x0)) "
    "for (99s, 0s, 0s)",
    "x; current job is (",
    "evil) for (99s, 0s, 0s)",
    "in API remoteDispatchEvil for domain other",
    "O'Brien \"db\" (prod), eu;west",
    "数据库-主 ✓ 🚀",
    " leading and trailing ",
    "owned by (1 x, 2 y, 3 z (flags=0x0))",
    ";",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_domain_name_is_taken_whole_and_never_mistaken_for_the_holder(name):
    message = (f"Cannot start job (query, none, none) in API remoteDispatchDomainGetInfo for domain {name}; current "
               f"job is (modify, none, none) owned by (4711 remoteDispatchDomainSetMemory, 0 <null>, 0 <null> "
               f"(flags=0x0)) for (42s, 0s, 0s)")
    assert parse_job_wait(message) == holder(
        name, "remoteDispatchDomainGetInfo", "query, none, none", "remoteDispatchDomainSetMemory", 4711, None, False,
        "modify, none, none", 42.0)


@pytest.mark.parametrize("message", [
    "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainGetInfo)",
    "Domain id=2 name='Cannot start job (query, none, none)' uuid=9 is tainted: high-privileges",
    "Cannot start job (query, none, none) in API remoteDispatchDomainGetInfo for domain db",
    "Cannot start job (query, none, none) for domain db; current job is (query, none, none) owned by "
    "(7 remoteDispatchDomainGetInfo, 0 <null>) for (1s, 0s)",  # three jobs, two owners
    "Cannot start job (query, none, none) for domain db; current job is (query, none, none) owned by "
    "(7 remoteDispatchDomainGetInfo, 0 <null>, 0 <null> (flags=0x0)) for (1s, 0s)",  # three jobs, two ages
    "Cannot start job (query, none, none) for domain db; current job is (query, none, none) owned by "
    "(7 remoteDispatchDomainGetInfo, 0 <null>, 0 <null> (flags=0x0)) for (1s, 0s, 0s) and more",
    "Cannot start job (query, none, none) for domain db; current job is (query, none, none) owned by (x, y, z)",
    "",
])
def test_other_and_malformed_messages_are_no_job_wait(message):
    assert parse_job_wait(message) is None


# --- the lock-timeout error --------------------------------------------------------------------------------------

LOCK_TIMEOUTS = {
    "held by the monitor job": (
        "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainGetInfo)",
        ("remoteDispatchDomainGetInfo", None)),
    "held by the agent job": (
        "Timed out during operation: cannot acquire state change lock (held by agent=remoteDispatchDomainGetFSInfo)",
        (None, "remoteDispatchDomainGetFSInfo")),
    "held by both": (
        "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainGetTime "
        "agent=remoteDispatchDomainGetHostname)",
        ("remoteDispatchDomainGetTime", "remoteDispatchDomainGetHostname")),
    "plain": ("Timed out during operation: cannot acquire state change lock", (None, None)),
    "without the error code's prefix": ("cannot acquire state change lock (held by monitor=A)", ("A", None)),
    "max_queued, plain": ("operation failed: cannot acquire state change lock due to max_queued limit", (None, None)),
    "max_queued, held by the monitor job": (
        "operation failed: cannot acquire state change lock (held by monitor=remoteDispatchDomainGetJobInfo) due to "
        "max_queued limit",
        ("remoteDispatchDomainGetJobInfo", None)),
    "max_queued, held by both": (
        "operation failed: cannot acquire state change lock (held by monitor=A agent=B) due to max_queued limit",
        ("A", "B")),
    "libvirt 1.3 to 4: held by an API": (
        "Timed out during operation: cannot acquire state change lock (held by remoteDispatchDomainBlockResize)",
        ("remoteDispatchDomainBlockResize", None)),
}


@pytest.mark.parametrize("message, expected", LOCK_TIMEOUTS.values(), ids=LOCK_TIMEOUTS.keys())
def test_a_lock_timeout_names_the_monitor_and_agent_holders(message, expected):
    assert parse_lock_timeout(message) == expected


@pytest.mark.parametrize("message", [
    "cannot acquire job mutex: Invalid argument",
    "Timed out during operation: cannot acquire state change lock (held by monitor=X) and then some",
    "internal error: connection closed due to keepalive timeout",
    "Failed to autostart VM 'a': domain 'cannot acquire state change lock'",
    SNAPSHOT,
])
def test_other_messages_are_no_lock_timeout(message):
    assert parse_lock_timeout(message) is None


# --- describe ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("message, text", [
    (SNAPSHOT, "guest 'win10': job (async nested, none, snapshot) held 30 s by thread 66684 in "
               "remoteDispatchDomainSnapshotCreateXML; remoteDispatchDomainGetXMLDesc waits"),
    (JOB_WAITS["the guest agent alone holds the guest"][0],
     "guest 'db': job (none, query, none) held 12 s by the guest agent (thread 4242 in remoteDispatchDomainGetFSInfo); "
     "remoteDispatchDomainGetFSInfo waits"),
    (JOB_WAITS["the monitor and the guest agent both hold it"][0],
     "guest 'db': job (query, query, none) held 40 s by thread 11 in remoteDispatchDomainGetTime and by the guest "
     "agent (in remoteDispatchDomainGetHostname); remoteDispatchDomainSetTime waits"),
    (JOB_WAITS["libvirt 1.2 and older: bare thread ids, no ages"][0],
     "guest 'db': job (none, migration out) held by thread 3131"),
    ("Cannot start job (query, none) for domain it's \"odd\"\n; current job is (query, none) owned by (0, 0)",
     "guest 'it's \"odd\"\n': job (query, none) held by an unknown thread"),  # the name as it is
])
def test_a_holder_describes_itself_in_one_line(message, text):
    assert parse_job_wait(message).describe() == text


# --- pairing, expiry, forgetting ---------------------------------------------------------------------------------

def record(seconds: float, thread: int, message: str, level: str = "warning") -> LogRecord:
    return LogRecord(T0_NS + int(seconds * SECOND_NS), thread, level, "virDomainObjBeginJobInternal", message)


def wait_line(domain: str, holder_thread: int = 5, api: str = "remoteDispatchDomainGetInfo",
              jobs: str = "query, none, none", owners: str = "0 <null>, 0 <null>") -> str:
    return (f"Cannot start job (query, none, none) in API remoteDispatchDomainGetXMLDesc for domain {domain}; "
            f"current job is ({jobs}) owned by ({holder_thread} {api}, {owners} (flags=0x0)) for (30s, 0s, 0s)")


def timeout_line(held: str | None) -> str:
    return "Timed out during operation: cannot acquire state change lock" + (f" (held by {held})" if held else "")


class FakeClock:
    def __init__(self, seconds: float):
        self.now = T0_NS / SECOND_NS + seconds

    def __call__(self) -> float:
        return self.now


def test_a_lock_timeout_is_paired_with_the_job_wait_of_the_same_thread_even_when_interleaved():
    locks = JobLocks(clock=FakeClock(1))
    seen = [locks.observe(record(0, 101, wait_line("alpha", 7, "remoteDispatchDomainGetInfo"))),
            locks.observe(record(0.001, 102, wait_line("beta", 8, "remoteDispatchDomainGetTime"))),
            locks.observe(record(0.001, 102, timeout_line("monitor=remoteDispatchDomainGetTime "
                                                      "agent=remoteDispatchDomainGetHostname"), "error")),
            locks.observe(record(0, 101, timeout_line(None), "error"))]
    assert [held.domain for held in seen] == ["alpha", "beta", "beta", "alpha"]
    beta = seen[2]
    assert (beta.holder_api, beta.holder_thread, beta.agent_api, beta.held_by_agent) == (
        "remoteDispatchDomainGetTime", 8, "remoteDispatchDomainGetHostname", True)
    assert seen[3] == seen[0]  # a plain timeout adds nothing
    assert [held.domain for held in locks.holders()] == ["beta", "alpha"]
    assert locks.unpaired_timeouts_total == 0


def test_the_lock_timeouts_verdict_names_the_holder_when_the_warning_could_not():
    locks = JobLocks(clock=FakeClock(1))
    locks.observe(record(0, 101, "Cannot start job (query, none) for domain old; current job is (query, none) "
                                 "owned by (0, 0)"))
    held = locks.observe(record(0, 101, timeout_line("remoteDispatchDomainGetInfo"), "error"))
    assert (held.domain, held.holder_api, held.holder_thread) == ("old", "remoteDispatchDomainGetInfo", None)
    agent = locks.observe(record(0, 102, wait_line("db", 0, "<null>", "none, none, none")))
    agent = locks.observe(record(0, 102, timeout_line("agent=remoteDispatchDomainGetFSInfo"), "error"))
    assert (agent.holder_api, agent.agent_api, agent.held_by_agent) == (
        "remoteDispatchDomainGetFSInfo", "remoteDispatchDomainGetFSInfo", True)
    assert "by the guest agent (in remoteDispatchDomainGetFSInfo)" in agent.describe()


def test_a_lock_timeout_without_its_threads_job_wait_is_counted_and_names_no_guest():
    locks = JobLocks(clock=FakeClock(100))
    locks.observe(record(0, 101, wait_line("alpha")))
    assert locks.observe(record(0, 102, timeout_line("monitor=X"), "error")) is None  # another thread
    assert locks.observe(record(0, 101, timeout_line("monitor=X"), "error")) is not None
    assert locks.observe(record(0, 101, timeout_line("monitor=X"), "error")) is None  # used up
    locks.observe(record(10, 103, wait_line("beta")))
    assert locks.observe(record(60, 103, timeout_line("monitor=X"), "error")) is None  # too late to be its pair
    assert locks.unpaired_timeouts_total == 3
    assert [(held.domain, held.holder_api) for held in locks.holders()] == [
        ("beta", "remoteDispatchDomainGetInfo"), ("alpha", "X")]


def test_other_records_are_ignored():
    locks = JobLocks(clock=FakeClock(1))
    assert locks.observe(record(0, 1, "End of file while reading data: Input/output error", "error")) is None
    assert locks.holders() == [] and locks.unpaired_timeouts_total == 0


def test_holders_keep_the_newest_per_guest_newest_first_and_expire_after_keep_seconds():
    clock = FakeClock(0)
    locks = JobLocks(keep_seconds=120.0, clock=clock)
    locks.observe(record(0, 1, wait_line("alpha", 11)))
    locks.observe(record(30, 2, wait_line("alpha", 12)))
    locks.observe(record(20, 3, wait_line("beta", 13)))
    locks.observe(record(10, 4, wait_line("alpha", 14)))  # an older line read late does not replace a newer one
    clock.now += 40
    assert [(held.domain, held.holder_thread) for held in locks.holders()] == [("alpha", 12), ("beta", 13)]
    assert [held.domain for held in locks.holders(now=clock.now + 100.5)] == ["alpha"]  # beta: 120.5 s old
    assert locks.holders(now=clock.now + 100.5) == locks.holders()  # expired ones are gone for good
    clock.now += 111
    assert locks.holders() == []


def test_a_forgotten_guest_is_gone_with_its_pending_wait():
    locks = JobLocks(clock=FakeClock(1))
    locks.observe(record(0, 1, wait_line("alpha")))
    locks.observe(record(0, 2, wait_line("beta")))
    locks.forget("alpha")
    locks.forget("never seen")
    assert [held.domain for held in locks.holders()] == ["beta"]
    assert locks.observe(record(0, 1, timeout_line("monitor=X"), "error")) is None


# --- real logs ----------------------------------------------------------------------------------------------------

def holders_of(log: str, at_end: float = 1.0, keep_seconds: float = 120.0) -> tuple[JobLocks, list[JobHolder]]:
    """Feed a whole fixture log; the clock reads `at_end` seconds after its last record."""
    records, _malformed = parse_text((LOGS / log).read_text())  # failures.log has malformed lines on purpose
    locks = JobLocks(keep_seconds=keep_seconds, clock=lambda: records[-1].time_ns / SECOND_NS + at_end)
    for each in records:
        locks.observe(each)
    return locks, locks.holders()


def test_the_real_pool_hang_log_names_the_stopped_guest_and_the_memorystats_call_holding_it_for_60_s():
    locks, holders = holders_of("job-lock-pool-hang.log")
    assert holders == [holder('guest 2,"b"', "remoteDispatchDomainMemoryStats", "query, none, none",
                              "remoteDispatchDomainMemoryStats", 8146, None, False, "query, none, none", 60.0,
                              1_796_433_765_600_000_000)]  # 2026-12-05 01:22:45.600 UTC: the last waiter's line
    assert locks.unpaired_timeouts_total == 0
    assert holders[0].describe() == ("guest 'guest 2,\"b\"': job (query, none, none) held 60 s by thread 8146 in "
                                     "remoteDispatchDomainMemoryStats; remoteDispatchDomainMemoryStats waits")
    _, later = holders_of("job-lock-pool-hang.log", at_end=121.0)
    assert later == []


def test_the_real_pool_hang_log_pairs_all_eighteen_waiters_with_their_timeouts():
    records, _ = parse_text((LOGS / "job-lock-pool-hang.log").read_text())
    locks = JobLocks(clock=lambda: records[-1].time_ns / SECOND_NS)
    reported = [held for held in map(locks.observe, records) if held is not None]
    assert len(reported) == 36 and locks.unpaired_timeouts_total == 0
    assert {held.holder_thread for held in reported} == {8146}
    assert sorted({held.age_seconds for held in reported}) == [30.0, 60.0]


@pytest.mark.parametrize("log, domain, holder_api, thread, age", [
    ("real-session.log", "web-ünïcødé-01", "remoteDispatchConnectGetAllDomainStats", 776, 33.0),
    ("failures.log", "数据库-主", "remoteDispatchDomainBlockResize", 21474, 31.0),
])
def test_the_other_fixture_logs_name_their_holders(log, domain, holder_api, thread, age):
    _, holders = holders_of(log, keep_seconds=float("inf"))  # failures.log spans hours
    assert [(held.domain, held.holder_api, held.holder_thread, held.age_seconds) for held in holders] == [
        (domain, holder_api, thread, age)]


# --- a real staged pool hang ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_real_pool_hang_names_the_stopped_guest_and_the_daemon_thread_holding_its_job(libvirtd_with_guests):
    from collector.daemon_threads import read_threads
    from faults import PoolHang

    daemon, (_calm, victim) = libvirtd_with_guests  # the victim's name is hostile: space, comma, quotes
    locks = JobLocks()
    tailer = LogTailer(daemon.log_path, from_start=True)
    with PoolHang(daemon, victim):
        deadline = time.monotonic() + 60  # the first waiters give up after 30 s (VIR_JOB_WAIT_TIME)
        while not locks.holders() and time.monotonic() < deadline:
            time.sleep(0.5)
            for each in tailer.read_new()[0]:
                locks.observe(each)
        threads = {info.tid: info for info in read_threads(daemon.pid)}
    tailer.close()
    held = locks.holders()
    assert [held[0].domain] == [victim] and len(held) == 1
    assert held[0].holder_api == "remoteDispatchDomainMemoryStats"
    assert held[0].age_seconds >= 30
    assert held[0].holder_thread in threads  # libvirt's thread ids are the kernel's: /proc/<pid>/task/<tid>
    assert threads[held[0].holder_thread].name == "rpc-libvirtd"
    assert locks.unpaired_timeouts_total == 0
