"""Why libvirtd is failing, from evidence built by hand: the cause sentence of each kind of failure (a full pool
waiting on a stopped guest, a stopped daemon, threads in D state, a crash, a restart, the guest agent holding a
job, several stuck guests), hostile names carried as they are, and the `diagnosis` point against tsdb.schema."""

from __future__ import annotations

import json

import pytest

from collector.admin_api import ClientGroup
from collector.daemon_process import ProcessEvidence
from collector.daemon_threads import ThreadInfo
from collector.diagnosis import TRIGGERS, Diagnosis, Evidence, diagnose
from collector.guest_processes import StuckGuest
from collector.job_locks import JobHolder
from tsdb.point import printable
from tsdb import Point
from tsdb.schema import MEASUREMENTS

HOST = "hv-07"
FULL_POOL = {"workers_min": 5, "workers_max": 10, "workers_current": 10, "workers_free": 0, "workers_priority": 5,
             "job_queue_depth": 8, "clients": 15, "clients_max": 5000}
CALM_POOL = {"workers_min": 5, "workers_max": 20, "workers_current": 5, "workers_free": 5, "workers_priority": 5,
             "job_queue_depth": 0, "clients": 2, "clients_max": 5000}
POLLER = ClientGroup("memstat-poller", 4242, 0, 14, 0, own=False)
AGENT = ClientGroup("python3", 77, 0, 1, 0, own=True)
PROBE = "the stats probe has had no answer for 45 s"
SEGFAULT_LINE = "segfault in thread rpc-libvirtd[8146] at ip 0x7f6a57d2f0fe in libvirt.so.0.9000.0+0x32f0fe"


def thread(tid: int, state: str, name: str = "rpc-libvirtd", wchan: str | None = None,
           syscall: str | None = None) -> ThreadInfo:
    return ThreadInfo(tid, name, state, wchan, syscall, None)


def sleeping(count: int, first_tid: int = 900) -> list[ThreadInfo]:
    return [thread(first_tid + n, "S", wchan="futex_do_wait", syscall="futex") for n in range(count)]


def holder(domain: str, thread_id: int | None = 8146, api: str | None = "remoteDispatchDomainMemoryStats",
           age: float | None = 30.0, agent: bool = False) -> JobHolder:
    return JobHolder(domain=domain, waiting_api="remoteDispatchDomainMemoryStats", waiting_job="query, none, none",
                     holder_api=api, holder_thread=thread_id, agent_api=api if agent else None, held_by_agent=agent,
                     job="none, query, none" if agent else "query, none, none", age_seconds=age)


RUNNING = ProcessEvidence(True, 900, "S")


def production_hang() -> Evidence:
    """The production incident: every worker busy, waiting on one stopped guest whose job a stats call holds."""
    return Evidence(process=RUNNING, threads=sleeping(17), pool=FULL_POOL, pool_age_seconds=3.0,
                    clients=[POLLER, AGENT], job_holders=[holder("web 1")],
                    stuck_guests={"web 1": StuckGuest(5555, "T")}, headline=PROBE)


# --- the cause sentence, one kind of failure per row -----------------------------------------------------------

CAUSES = {
    "the production pool hang names the full pool, the stopped guest, its job holder and who floods the daemon": (
        "hang", production_hang(), 45.2,
        "libvirtd on hv-07 hung 45 s: 10 of 10 workers busy, 8 calls queued; they wait on guest 'web 1' whose QEMU "
        "is stopped (state T), its job held 30 s by thread 8146 in remoteDispatchDomainMemoryStats (daemon log); 14 "
        "connections from memstat-poller (pid 4242), 1 from the virtwatch agent itself (pid 77); the stats probe has "
        "had no answer for 45 s"),
    "a stopped daemon is said first, and a pool reading older than 15 s says its age": (
        "hang", Evidence(process=ProcessEvidence(True, 900, "T"), threads=[thread(900 + n, "T") for n in range(17)],
                         pool=FULL_POOL, pool_age_seconds=40.4, clients=[POLLER], headline=PROBE), 45.0,
        "libvirtd on hv-07 hung 45 s: the libvirtd process (pid 900) is stopped (state T), all 17 of its "
        "threads; 10 of 10 workers busy, 8 calls queued (admin API as of 40 s ago); 14 connections from memstat-poller "
        "(pid 4242); the stats probe has had no answer for 45 s"),
    "a daemon stopped by a tracer is said first as well": (
        "hang_start", Evidence(process=ProcessEvidence(True, 900, "t"), threads=[thread(900, "t"), thread(901, "t")],
                               pool=FULL_POOL, pool_age_seconds=2.0), 5.0,
        "libvirtd on hv-07 hung 5 s: the libvirtd process (pid 900) is stopped by a tracer (state t), all 2 of "
        "its threads; 10 of 10 workers busy, 8 calls queued"),
    "a pool reading younger than 15 s says no age": (
        "hang", Evidence(process=RUNNING, threads=sleeping(3), pool=FULL_POOL, pool_age_seconds=14.9), 20.0,
        "libvirtd on hv-07 hung 20 s: 10 of 10 workers busy, 8 calls queued"),
    "threads in D state are named first, before the pool": (
        "hang", Evidence(process=RUNNING, threads=[*sleeping(2), thread(4711, "D", wchan="nfs_wait_bit_killable")],
                         pool=FULL_POOL, pool_age_seconds=1.0, clients=[POLLER]), 12.0,
        "libvirtd on hv-07 hung 12 s: libvirtd's 3 threads: 2 sleeping, 1 in D state (rpc-libvirtd 4711 in "
        "nfs_wait_bit_killable); 10 of 10 workers busy, 8 calls queued; 14 connections from memstat-poller "
        "(pid 4242)"),
    "a whole process in D state is named first with its threads": (
        "hang", Evidence(process=ProcessEvidence(True, 900, "D"), threads=[thread(900, "D", wchan="io_schedule")],
                         pool=CALM_POOL, pool_age_seconds=1.0), 12.0,
        "libvirtd on hv-07 hung 12 s: the libvirtd process (pid 900) is in uninterruptible sleep (state D) (one "
        "thread); 0 of 5 workers busy (max 20), 0 calls queued"),
    "a transient running thread comes after the pool and the clients": (
        "hang", Evidence(process=RUNNING, threads=[*sleeping(2), thread(901, "R", syscall="running")],
                         pool=FULL_POOL, pool_age_seconds=1.0, clients=[POLLER], headline=PROBE), 45.0,
        "libvirtd on hv-07 hung 45 s: 10 of 10 workers busy, 8 calls queued; 14 connections from memstat-poller "
        "(pid 4242); libvirtd's 3 threads: 2 sleeping, 1 running (R) (rpc-libvirtd 901); the stats probe has had "
        "no answer for 45 s"),
    "a segfault says the kernel's line first, the pool before it, and that no process runs": (
        "segfault", Evidence(process=ProcessEvidence(False), pool=FULL_POOL, pool_age_seconds=5.0,
                             clients=[POLLER, AGENT], headline=SEGFAULT_LINE), 0.0,
        "libvirtd on hv-07 crashed: segfault in thread rpc-libvirtd[8146] at ip 0x7f6a57d2f0fe in "
        "libvirt.so.0.9000.0+0x32f0fe; before it: 10 of 10 workers busy, 8 calls queued; 14 connections from "
        "memstat-poller (pid 4242), 1 from the virtwatch agent itself (pid 77); no libvirtd process is running"),
    "a restart says what ended the old process first and the old pool before it, with its age": (
        "restart", Evidence(process=ProcessEvidence(True, 901, "S"), threads=sleeping(4, 901), pool=CALM_POOL,
                            pool_age_seconds=20.0, headline="pid 900 → 901; no segfault of the old process in the "
                                                            "kernel log"), 0.0,
        "libvirtd on hv-07 restarted: pid 900 → 901; no segfault of the old process in the kernel log; before it: "
        "0 of 5 workers busy (max 20), 0 calls queued (admin API as of 20 s ago)"),
    "a restarted daemon that is stopped at once is said after the headline, not before it": (
        "restart", Evidence(process=ProcessEvidence(True, 901, "T"), threads=[thread(901, "T")],
                            headline="pid 900 → 901"), 0.0,
        "libvirtd on hv-07 restarted: pid 900 → 901; the libvirtd process (pid 901) is stopped (state T) (one "
        "thread)"),
    "the guest agent holding a guest's job is named as such": (
        "hang", Evidence(process=RUNNING, threads=sleeping(3), pool=FULL_POOL, pool_age_seconds=1.0,
                         job_holders=[holder("db", 4243, "remoteDispatchDomainGetFSInfo", 12.0, agent=True)]), 30.0,
        "libvirtd on hv-07 hung 30 s: 10 of 10 workers busy, 8 calls queued; the job of guest 'db' held 12 s by the "
        "guest agent, thread 4243 in remoteDispatchDomainGetFSInfo (daemon log)"),
    "several stuck guests are listed by name with their states, sorted": (
        "hang", Evidence(pool=FULL_POOL, pool_age_seconds=1.0,
                         stuck_guests={"b": StuckGuest(2, "D"), "a": StuckGuest(1, "T"), "c": StuckGuest(3, "t")}),
        30.0,
        "libvirtd on hv-07 hung 30 s: 10 of 10 workers busy, 8 calls queued; they wait on guests 'a' (state T), "
        "'b' (state D), 'c' (state t) whose QEMU cannot run"),
    "stuck guests with workers free are not said to be what the workers wait on": (
        "hang", Evidence(pool=CALM_POOL, pool_age_seconds=1.0,
                         stuck_guests={"b": StuckGuest(2, "D"), "a": StuckGuest(1, "T")}), 30.0,
        "libvirtd on hv-07 hung 30 s: 0 of 5 workers busy (max 20), 0 calls queued; the QEMU of guests 'a' (state T), "
        "'b' (state D) cannot run"),
    "one stuck guest and no pool reading: its QEMU's state in words": (
        "hang", Evidence(stuck_guests={"a": StuckGuest(1, "t")}), 30.0,
        "libvirtd on hv-07 hung 30 s: the QEMU of guest 'a' is stopped by a tracer (state t)"),
    "the job holder of a guest that is not stuck names its guest": (
        "hang", Evidence(pool=FULL_POOL, pool_age_seconds=1.0, stuck_guests={"web 1": StuckGuest(1, "T")},
                         job_holders=[holder("x")]), 30.0,
        "libvirtd on hv-07 hung 30 s: 10 of 10 workers busy, 8 calls queued; they wait on guest 'web 1' whose QEMU "
        "is stopped (state T); the job of guest 'x' held 30 s by thread 8146 in remoteDispatchDomainMemoryStats "
        "(daemon log)"),
    "among several stuck guests the holder of a stuck one is named, not the newest": (
        "hang", Evidence(pool=FULL_POOL, pool_age_seconds=1.0,
                         stuck_guests={"a": StuckGuest(1, "T"), "b": StuckGuest(2, "T")},
                         job_holders=[holder("x", 1), holder("b", 2)]), 30.0,
        "libvirtd on hv-07 hung 30 s: 10 of 10 workers busy, 8 calls queued; they wait on guests 'a' (state T), "
        "'b' (state T) whose QEMU cannot run; the job of guest 'b' held 30 s by thread 2 in "
        "remoteDispatchDomainMemoryStats (daemon log)"),
    "a holder the log names without thread, API or age is 'another call'": (
        "hang", Evidence(job_holders=[holder("x", None, None, None)]), 30.0,
        "libvirtd on hv-07 hung 30 s: the job of guest 'x' held by another call (daemon log)"),
    "a manual diagnosis of a dead daemon says so": (
        "manual", Evidence(process=ProcessEvidence(False)), 0.0,
        "libvirtd on hv-07: no libvirtd process is running"),
    "no evidence at all says that nothing could be read": (
        "hang", Evidence(), 45.0,
        "libvirtd on hv-07 hung 45 s: no evidence could be read (no process, admin API or log)"),
    "a crash without evidence says that nothing could be read either": (
        "segfault", Evidence(), 0.0,
        "libvirtd on hv-07 crashed: no evidence could be read (no process, admin API or log)"),
}


@pytest.mark.parametrize("trigger, evidence, hang_seconds, cause", CAUSES.values(), ids=CAUSES.keys())
def test_the_cause_reads_as_an_engineers_first_line(trigger, evidence, hang_seconds, cause):
    diagnosis = diagnose(HOST, trigger, evidence, hang_seconds)
    assert diagnosis.cause == cause
    assert diagnosis.trigger == trigger
    if "no evidence could be read" not in cause:
        assert cause.endswith(diagnosis.reasons) and diagnosis.reasons  # the clauses without the opening


def test_the_production_hangs_fields_name_the_pool_the_top_client_the_agent_and_the_job():
    fields = diagnose(HOST, "hang", production_hang(), 45.2).fields
    assert fields == {
        "hang_seconds": 45.2, "process_state": "S", "threads": 17, "threads_running": 0,
        "threads_disk_wait": 0, "threads_stopped": 0, "threads_not_sleeping": "",
        "workers_busy": 10, "workers_max": 10, "workers_priority": 5, "job_queue_depth": 8, "pool_age_seconds": 3.0,
        "clients_listed": 15, "agent_connections": 1, "top_client": "memstat-poller (pid 4242)",
        "top_client_connections": 14,
        "clients_by_process": "14 connections from memstat-poller (pid 4242), 1 from the virtwatch agent itself "
                              "(pid 77)",
        "job_domain": "web 1", "job_waiting_api": "remoteDispatchDomainMemoryStats",
        "job_holder_api": "remoteDispatchDomainMemoryStats", "job_holder_thread": 8146, "job_age_seconds": 30.0,
        "job_held_by_agent": 0, "stuck_guests": 1, "stuck_guest_names_json": '["web 1"]',
    }
    assert json.loads(fields["stuck_guest_names_json"]) == ["web 1"]


def test_a_stopped_daemons_fields_count_its_stopped_threads_and_name_the_not_sleeping_ones():
    threads = [thread(900, "T"), thread(901, "t"), thread(902, "D", wchan="io_schedule"), thread(903, "R"),
               thread(904, "S")]
    fields = diagnose(HOST, "hang", Evidence(process=ProcessEvidence(True, 900, "T"), threads=threads), 9.0).fields
    assert (fields["process_state"], fields["threads"], fields["threads_stopped"],
            fields["threads_disk_wait"], fields["threads_running"]) == ("T", 5, 2, 1, 1)
    assert fields["threads_not_sleeping"] == ("thread rpc-libvirtd 900 stopped (T); thread rpc-libvirtd 901 stopped "
                                              "by a tracer (t); thread rpc-libvirtd 902 in D state, in io_schedule; "
                                              "thread rpc-libvirtd 903 running (R)")


def test_a_gone_daemons_process_state_is_gone_and_a_guest_agent_job_is_flagged():
    fields = diagnose(HOST, "segfault", Evidence(process=ProcessEvidence(False),
                                                 job_holders=[holder("db", agent=True)])).fields
    assert (fields["process_state"], fields["job_domain"], fields["job_held_by_agent"]) == ("gone", "db", 1)


def test_only_the_agents_own_connections_leave_no_top_client():
    fields = diagnose(HOST, "hang", Evidence(clients=[AGENT]), 1.0).fields
    assert (fields["clients_listed"], fields["agent_connections"]) == (1, 1)
    assert "top_client" not in fields and "top_client_connections" not in fields


def test_without_evidence_only_the_hang_and_the_empty_guest_list_are_fields():
    assert diagnose(HOST, "hang", Evidence(), 45.0).fields == {
        "hang_seconds": 45.0, "stuck_guests": 0, "stuck_guest_names_json": "[]"}


# --- hostile names -----------------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "web 1",
    "a,b=c d",
    "it's",
    'say "hi"',
    "back\\slash\\",
    "<script>alert(1)</script>",
    "two\nlines",
    "数据库-主 ✓ 🚀",
    "'; current job is (",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_guest_name_is_in_the_cause_on_one_line_and_round_trips_through_the_json_list(name):
    evidence = Evidence(pool=FULL_POOL, pool_age_seconds=1.0, stuck_guests={name: StuckGuest(5, "T")},
                        job_holders=[holder(name)])
    diagnosis = diagnose(HOST, "hang", evidence, 45.0)
    assert diagnosis.cause == (f"libvirtd on hv-07 hung 45 s: 10 of 10 workers busy, 8 calls queued; they wait on "
                               f"guest '{printable(name)}' whose QEMU is stopped (state T), its job held 30 s by thread 8146 in "
                               f"remoteDispatchDomainMemoryStats (daemon log)")
    assert json.loads(diagnosis.fields["stuck_guest_names_json"]) == [name]
    assert diagnosis.fields["job_domain"] == name


def test_many_hostile_guest_names_round_trip_through_the_json_list_sorted():
    stuck = {name: StuckGuest(n, "D") for n, name in enumerate(HOSTILE_NAMES)}
    diagnosis = diagnose(HOST, "hang", Evidence(stuck_guests=stuck), 45.0)
    assert json.loads(diagnosis.fields["stuck_guest_names_json"]) == sorted(HOSTILE_NAMES)
    assert diagnosis.fields["stuck_guests"] == len(HOSTILE_NAMES)
    for name in HOSTILE_NAMES:
        assert f"'{printable(name)}' (state D)" in diagnosis.cause


@pytest.mark.parametrize("name", [name for name in HOSTILE_NAMES if name])
def test_a_hostile_client_process_name_is_in_the_cause_on_one_line_and_in_the_fields_as_it_is(name):
    clients = [ClientGroup(name, 4242, 0, 14, 0, own=False), AGENT]
    diagnosis = diagnose(HOST, "hang", Evidence(clients=clients), 45.0)
    assert diagnosis.cause == (f"libvirtd on hv-07 hung 45 s: 14 connections from {printable(name)} (pid 4242), 1 from the "
                               f"virtwatch agent itself (pid 77)")
    assert diagnosis.fields["top_client"] == f"{name} (pid 4242)"


def test_a_hostile_host_name_is_in_the_cause_on_one_line_and_in_the_tag_as_it_is():
    host = 'hv "07",\n<b>'
    diagnosis = diagnose(host, "manual", Evidence(process=ProcessEvidence(False)))
    assert diagnosis.cause == f"libvirtd on {printable(host)}: no libvirtd process is running"  # one line
    assert diagnosis.point(host, 1).tags == {"host": host, "trigger": "manual"}


# --- triggers and the point --------------------------------------------------------------------------------------

@pytest.mark.parametrize("trigger", ["crash", "", "HANG", "hang "])
def test_an_unknown_trigger_is_refused_naming_it(trigger):
    with pytest.raises(ValueError, match=f"unknown diagnosis trigger {trigger!r}"):
        diagnose(HOST, trigger, Evidence())


def everything() -> Evidence:
    """Evidence that makes every field: process, threads, pool, clients, a job holder, stuck guests."""
    return Evidence(process=ProcessEvidence(True, 900, "S"), threads=[*sleeping(3), thread(4711, "D", wchan="w")],
                    pool=FULL_POOL, pool_age_seconds=3.0, clients=[POLLER, AGENT],
                    job_holders=[holder("web 1")], stuck_guests={"web 1": StuckGuest(5555, "T")}, headline=PROBE)


def test_the_point_is_the_diagnosis_measurement_with_host_and_trigger_tags_and_the_cause():
    diagnosis = diagnose(HOST, "hang", everything(), 45.0)
    point = diagnosis.point(HOST, 1_796_000_000_000_000_000)
    assert point == Point("diagnosis", {"host": HOST, "trigger": "hang"}, {"cause": diagnosis.cause,
                                                                            **diagnosis.fields},
                          1_796_000_000_000_000_000)


SCHEMA_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def assert_fields_match_the_schema(fields: dict) -> None:
    schema = MEASUREMENTS["diagnosis"]
    for name, value in fields.items():
        wanted = schema.field(name).type  # KeyError: a field the schema does not know
        assert type(value) is SCHEMA_TYPES[wanted], f"{name} = {value!r} is not a {wanted}"


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_with_every_piece_of_evidence_the_point_has_every_schema_field_each_of_its_type(trigger):
    point = diagnose(HOST, trigger, everything(), 45.0).point(HOST, 1)
    assert set(point.fields) == {field.name for field in MEASUREMENTS["diagnosis"].fields}
    assert_fields_match_the_schema(point.fields)
    assert [tag.name for tag in MEASUREMENTS["diagnosis"].tags] == list(point.tags)


@pytest.mark.parametrize("evidence", [Evidence(), everything(), CAUSES[next(iter(CAUSES))][1]],
                         ids=["nothing", "everything", "the production hang"])
def test_whole_seconds_given_as_ints_are_still_float_fields(evidence):
    evidence = Evidence(**{**vars(evidence), "pool_age_seconds": 3 if evidence.pool else None})
    assert_fields_match_the_schema(diagnose(HOST, "hang", evidence, 45).point(HOST, 1).fields)


@pytest.mark.parametrize("case", CAUSES.values(), ids=CAUSES.keys())
def test_every_cause_rows_fields_are_schema_fields_of_their_type(case):
    trigger, evidence, hang_seconds, _cause = case
    diagnosis = diagnose(HOST, trigger, evidence, hang_seconds)
    assert isinstance(diagnosis, Diagnosis)
    assert_fields_match_the_schema(diagnosis.point(HOST, 1).fields)
