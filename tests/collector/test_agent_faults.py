"""The agent tells the truth when libvirtd is at its worst: a REAL private libvirtd and REAL QEMU guests, faults
staged the way production has them and HELD for tens of seconds while the real agent loop runs. Each test
asserts the whole story (every event, every interval), never a time limit: the agent's own deadlines bound it,
and the tests count intervals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from collector.agent import Agent
from collector.daemon_health import DaemonHealth
from collector.forensics import CaptureSources, ForensicsCapture
from collector.guest_processes import GuestProcesses
from collector.libvirt_source import LibvirtSource
from faults import POLLER_NAME, POOL_HANG_CLIENTS, PoolHang
from tsdb import open_store
from tsdb.forensics import decode_bundle

pytestmark = pytest.mark.slow
INTERVAL_SECONDS = 2.0
PROBE_DEADLINE_SECONDS = 5.0


@pytest.fixture
def store(tmp_path):
    with open_store(f"duckdb://{tmp_path}/faults.duckdb") as store:
        yield store


def make_agent(store, daemon, uri: str, interval: float = INTERVAL_SECONDS, forensics_after: float = 30.0,
               kmsg: bool = False) -> Agent:
    """The agent as `virtwatch agent` builds it, on the private daemon (default keepalive: 5 s x 5), with
    forensics captured into the daemon's temp dir once a hang has lasted `forensics_after` s."""
    source = LibvirtSource(uri, call_timeout_seconds=PROBE_DEADLINE_SECONDS)
    health = DaemonHealth(daemon.pidfile, daemon.admin_uri, admin_timeout_seconds=PROBE_DEADLINE_SECONDS / 2,
                          log_file=daemon.log_path, kmsg_path="/dev/kmsg" if kmsg else None)
    sources = CaptureSources(daemon.pidfile, admin_uri=daemon.admin_uri, log_file=daemon.log_path,
                             kmsg_path="/dev/kmsg", qemu_pid_dir=daemon.tmp / "run" / "qemu")
    forensics = ForensicsCapture("hv-fault", sources, daemon.tmp / "forensics", own_pids=lambda: health.own_pids)
    return Agent(store, source, "hv-fault", interval_seconds=interval, daemon_health=health,
                 guests=GuestProcesses(daemon.tmp / "run" / "qemu"), forensics=forensics,
                 forensics_after_hang_seconds=forensics_after)


class Running:
    """The agent's real loop on a thread, for the length of a `with` block."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=agent.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> "Running":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join(30)
        self.agent.source.close()
        if self.agent.daemon_health is not None:
            self.agent.daemon_health.close()
        assert not self.thread.is_alive(), "the agent did not stop"


def wait_intervals(agent: Agent, count: int) -> None:
    """Wait until the agent has collected `count` more intervals (counted, not timed)."""
    target = agent.collections_total + count
    while agent.collections_total < target:
        time.sleep(0.05)


def event_kinds(store, exclude_prefix: str = "log_") -> list[str]:
    """Event kinds in time order, without the daemon log's classified lines."""
    return [kind for kind in store.events(0)["kind"].tolist() if not kind.startswith(exclude_prefix)]


def interval_coverage(store, measurement: str, field: str) -> float:
    """Share of the intervals between the first and the last point of `measurement` that have a point."""
    times = store.query(measurement, [field], 0, 2**62)["time"].astype("int64")
    spanned = round((times.iloc[-1] - times.iloc[0]) / 1e9 / INTERVAL_SECONDS) + 1
    return len(times) / spanned


def diagnoses(store):
    """Every diagnosis point, oldest first, with its trigger."""
    return store.query("diagnosis", ["cause", "hang_seconds", "process_state", "threads", "threads_stopped",
                                     "workers_busy", "workers_max", "job_queue_depth", "top_client", "top_client_connections",
                                     "job_domain", "job_holder_api", "job_holder_thread", "job_age_seconds",
                                     "stuck_guest_names_json"], 0, 2**62, group_by=["trigger"]).sort_values("time")


def bundles(store):
    """Every forensics record, oldest first, decoded."""
    rows = store.query("forensics", ["bundle", "encoding", "steps_cut", "file"], 0, 2**62,
                       group_by=["trigger"]).sort_values("time")
    return [(row.trigger, decode_bundle(row.bundle, row.encoding), row) for row in rows.itertuples()]


def daemon_rows(store):
    return store.query("libvirtd", ["up", "hung", "probe_ok", "hang_seconds", "probe_outstanding_seconds", "pid",
                                    "restarts_total", "clients", "workers_free"], 0, 2**62)


def test_a_daemon_stopped_for_25_s_is_one_hang_never_down_with_host_points_at_every_interval(store, libvirtd):
    agent = make_agent(store, libvirtd, libvirtd.uri_test, forensics_after=10)
    with Running(agent):
        wait_intervals(agent, 3)
        libvirtd.kill(signal.SIGSTOP)
        try:
            time.sleep(25)  # the fault, held as production holds it
        finally:
            libvirtd.kill(signal.SIGCONT)
            resumed_ns = time.time_ns()
        wait_intervals(agent, 5)
    assert event_kinds(store) == ["hang_start", "hang_end"]
    events = store.events(0)
    start = events["message"].iloc[0]
    assert start.startswith("libvirtd on hv-fault hung ") and f"(pid {libvirtd.pid}) is stopped (state T)" in start
    assert re.search(r"is stopped \(state T\), all \d+ of its threads; ", start)
    # the cause at the start and at every interval of the hang, the same process state each time
    told = diagnoses(store)
    assert told["trigger"].tolist() == ["hang_start"] + ["hang"] * (len(told) - 1)
    stopped = told[told["time"].astype("int64") < resumed_ns]  # then it runs, hung until 2 probes answer
    assert len(stopped) >= 8 and (stopped["process_state"] == "T").all()
    assert (stopped["threads_stopped"] == stopped["threads"]).all()
    assert told["cause"].iloc[0] == start
    # one bundle, at 10 s into the hang: every thread stopped; the admin API, which a stopped daemon cannot
    # answer, is named as the step that failed
    [(trigger, bundle, row)] = bundles(store)
    assert trigger == "hang" and bundle["diagnosis"]["hang_seconds"] >= 10
    assert len(bundle["threads"]) == bundle["process"]["threads"] >= 5
    assert {thread["state"] for thread in bundle["threads"]} == {"T"}
    assert row.steps_cut == "admin" and json.loads(Path(row.file).read_text())["cause"] == bundle["cause"]
    assert "2 probes in a row" in events["message"].iloc[1]
    rows = daemon_rows(store)
    hung = rows[rows["hung"] == 1]
    assert 8 <= len(hung) and (rows["up"] == 1).all()  # hung, never down
    assert hung["hang_seconds"].is_monotonic_increasing  # one hang, measured continuously
    answers = hung["probe_ok"].tolist()  # no probe answers in time, then 1 of the 2 that end the hang
    assert answers == [0] * (len(answers) - 1) + [1]
    assert rows["hung"].iloc[-1] == 0 and rows["probe_ok"].iloc[-1] == 1
    assert agent.source.connections_opened_total == 1  # no new connection into the stopped daemon
    assert interval_coverage(store, "host", "load1") >= 0.95
    assert interval_coverage(store, "libvirtd", "up") >= 0.95
    process = store.query("libvirtd", ["pid"], 0, 2**62)  # /proc figures kept coming during the hang
    assert len(process) >= 0.95 * len(rows)


def test_the_production_pool_hang_is_one_incident_and_the_agent_never_joins_it(store, libvirtd_with_guests):
    daemon, (calm, victim) = libvirtd_with_guests  # the victim's name is hostile: space, comma, quotes
    agent = make_agent(store, daemon, daemon.uri_qemu, forensics_after=33)
    with Running(agent):
        wait_intervals(agent, 3)
        before = daemon_rows(store)["clients"].dropna().iloc[-1]
        with PoolHang(daemon, victim) as hang:
            time.sleep(45)
        lifted_ns = time.time_ns()
        assert hang.calls_total > 0
        wait_intervals(agent, 5)
    kinds = event_kinds(store)
    assert sorted(kinds) == ["domain_wedged", "hang_end", "hang_start"]
    assert kinds.index("hang_start") < kinds.index("hang_end")
    events = store.events(0)
    start = events[events["kind"] == "hang_start"]["message"].iloc[0]
    # the cause names the full pool, the guest it waits on (its hostile name as it is) and who holds the clients
    assert start.startswith("libvirtd on hv-fault hung ")
    assert re.search(r"[:;] (\d+) of \1 workers busy( \(max 10\))?, [1-9]\d* calls queued; ", start)  # all busy
    assert f"they wait on guest '{victim}' whose QEMU is stopped (state T)" in start
    assert f"{POOL_HANG_CLIENTS} connections from {POLLER_NAME} (pid {hang.poller_pid})" in start
    told = diagnoses(store)
    assert told["trigger"].iloc[0] == "hang_start" and set(told["trigger"].iloc[1:]) == {"hang"} and len(told) >= 15
    held_up = told[told["time"].astype("int64") < lifted_ns]
    full = (held_up["workers_busy"] == held_up["workers_max"]) | (held_up["job_queue_depth"] > 0)
    assert full.all()  # every interval: all workers busy or calls queued (as read: a worker frees for a moment)
    assert (held_up["top_client"] == f"{POLLER_NAME} (pid {hang.poller_pid})").all()
    assert (held_up["stuck_guest_names_json"].map(json.loads) == [[victim]] * len(held_up)).all()
    # 30 s into the hang the daemon's log names the job's holder: later diagnoses say who it is
    held = held_up[held_up["job_domain"] == victim]
    assert len(held) >= 2 and (held["job_holder_api"] == "remoteDispatchDomainMemoryStats").all()
    assert (held["job_age_seconds"] >= 30).all() and "its job held 30 s by thread" in held["cause"].iloc[-1]
    # one bundle: every libvirtd thread, the poller's 14 connections, the stopped QEMU
    [(trigger, bundle, row)] = bundles(store)
    assert trigger == "hang" and row.steps_cut == "" and bundle["cause"].startswith("libvirtd on hv-fault hung 3")
    assert len(bundle["threads"]) == bundle["process"]["threads"]
    assert held["job_holder_thread"].iloc[-1] in {thread["tid"] for thread in bundle["threads"]}
    assert sum(client["pid"] == hang.poller_pid for client in bundle["clients"]) == POOL_HANG_CLIENTS
    assert [guest["state"] for guest in bundle["qemu"] if guest["domain"] == victim] == ["T"]
    wedged = events[events["kind"] == "domain_wedged"]
    assert wedged["domain"].tolist() == [victim] and "QEMU process" in wedged["message"].iloc[0]
    domains = store.query("domain", ["stats_partial", "memory_rss_bytes"], 0, 2**62, group_by=["domain"])
    calm_rows = domains[domains["domain"] == calm]
    assert (calm_rows["stats_partial"] == 0).all() and calm_rows["memory_rss_bytes"].notna().all()
    # the agent added at most one client, and no call of the agent ever held a guest's job
    rows = daemon_rows(store)
    assert rows["clients"].max() <= before + POOL_HANG_CLIENTS
    log = daemon.log_path.read_text(errors="replace")
    assert "held by monitor=remoteDispatchDomainMemoryStats" in log
    assert "held by monitor=remoteDispatchConnectGetAllDomainStats" not in log
    assert "held by monitor=remoteDispatchConnectDomainListGetStats" not in log
    assert interval_coverage(store, "host", "load1") >= 0.95
    assert agent.source.connections_opened_total == 1


def test_a_killed_and_restarted_daemon_is_down_at_once_then_restart_and_up_and_nothing_else(store, libvirtd):
    agent = make_agent(store, libvirtd, libvirtd.uri_test, interval=5.0)
    with Running(agent):
        wait_intervals(agent, 2)
        first_pid = libvirtd.pid
        killed_ns = time.time_ns()
        libvirtd.kill(signal.SIGKILL)
        ticks_before = agent.collections_total
        wait_intervals(agent, 1)
        libvirtd.restart()
        wait_intervals(agent, 3)
    assert event_kinds(store) == ["daemon_down", "restart", "daemon_up"]
    events = store.events(0)
    down = events.iloc[0]
    assert "connection closed (eof)" in down["message"] and "no libvirtd process is running" in down["message"]
    # told on the connection's close, not at the next interval
    collector = store.query("collector", ["scrape_duration_ms"], 0, 2**62)["time"].astype("int64").tolist()
    next_tick = [t for t in collector if t > killed_ns][0]
    assert killed_ns < down["time"].value < next_tick and ticks_before == len([t for t in collector if t < killed_ns])
    assert f"pid {first_pid}" in events["message"].iloc[1]
    rows = daemon_rows(store)
    assert rows["restarts_total"].iloc[-1] == 1 and rows["up"].iloc[-1] == 1


def test_a_real_segfault_is_told_with_the_crashing_thread_then_the_restart_with_one_bundle(store, libvirtd):
    agent = make_agent(store, libvirtd, libvirtd.uri_test, kmsg=True)
    with Running(agent):
        wait_intervals(agent, 3)
        crashed = libvirtd.pid
        # A real fault: gdb points the main thread at address 0 and detaches, and the daemon faults on its own.
        # (With `continue` under gdb the kernel logs nothing: it does not report faults of a traced process,
        # and gdb's detach then delivers the SIGSEGV as a plain signal.)
        subprocess.run(["gdb", "-p", str(crashed), "-batch", "-nx", "-ex", "set $pc = 0"],
                       capture_output=True, timeout=120, check=False)
        while os.path.exists(f"/proc/{crashed}") and open(f"/proc/{crashed}/stat").read().split()[2] != "Z":
            time.sleep(0.1)
        wait_intervals(agent, 3)
        libvirtd.restart()
        wait_intervals(agent, 4)
    events = store.events(0)
    kinds = event_kinds(store)
    assert sorted(kinds) == ["daemon_down", "daemon_up", "restart", "segfault"]
    assert kinds.index("segfault") < kinds.index("restart") < kinds.index("daemon_up")
    segfault = events[events["kind"] == "segfault"]["message"].iloc[0]
    assert segfault.startswith("libvirtd on hv-fault crashed: segfault in thread ")
    assert f"of libvirtd (pid {crashed})" in segfault and "before it: " in segfault
    restart = events[events["kind"] == "restart"]["message"].iloc[0]
    assert restart.startswith(f"libvirtd on hv-fault restarted: pid {crashed} → {libvirtd.pid}; the old process "
                              f"crashed ") and "segfault in thread" in restart
    told = diagnoses(store)
    assert told["trigger"].tolist() == ["segfault", "restart"]
    # one bundle, for the segfault (the restart is the same incident): the kernel's line and the thread names
    # the agent read while the process lived
    [(trigger, bundle, row)] = bundles(store)
    assert trigger == "segfault" and f"libvirtd[{crashed}]: segfault at " in bundle["kernel_line"]
    assert any(bundle["kernel_line"] in line for line in bundle["kernel_log"])
    assert len(bundle["threads_seen_before"]) >= 5 and "threads" not in bundle
    assert "process" in row.steps_cut  # the process was gone: said, not guessed


def test_a_guest_stopped_alone_is_left_out_and_wedged_while_the_others_keep_full_stats(store, libvirtd_with_guests):
    daemon, (calm, victim) = libvirtd_with_guests
    agent = make_agent(store, daemon, daemon.uri_qemu)
    qemu = daemon.qemu_pid(victim)
    with Running(agent):
        wait_intervals(agent, 3)
        os.kill(qemu, signal.SIGSTOP)
        try:
            wait_intervals(agent, 6)
        finally:
            os.kill(qemu, signal.SIGCONT)
        wait_intervals(agent, 3)
    assert event_kinds(store) == ["domain_wedged"]
    events = store.events(0)
    assert events["domain"].tolist() == [victim] and "is stopped (state T)" in events["message"].iloc[0]
    domains = store.query("domain", ["stats_partial"], 0, 2**62, group_by=["domain"])
    assert (domains[domains["domain"] == calm]["stats_partial"] == 0).all()
    flagged = domains[domains["domain"] == victim]["stats_partial"].tolist()
    assert 1 in flagged and flagged[-1] == 0  # wedged while stopped, full stats again after
    # each round's own count (what domain stability reads) equals its points: the victim's partial ones are wedged
    points = store.query("domain", ["state_code", "state_reason_code", "stats_partial"], 0, 2**62,
                         group_by=["domain"])
    rounds = store.query("domain_round", ["domain_points", "wedged_points"], 0, 2**62).set_index("time")
    per_round = points.groupby("time").agg(points=("state_code", "count"), wedged=("stats_partial", "sum"))
    assert per_round.index.tolist() == rounds.index.tolist() and len(rounds) >= 12
    assert (rounds["domain_points"] == per_round["points"]).all()
    assert (rounds["wedged_points"] == per_round["wedged"]).all() and flagged.count(1) == rounds["wedged_points"].sum()
    assert (daemon_rows(store)["hung"] == 0).all()
    log = daemon.log_path.read_text(errors="replace")
    assert "cannot acquire state change lock" not in log  # nobody waited on the job: the agent never took it


def test_a_killed_guest_gives_a_domain_failed_event_naming_it(store, libvirtd_with_guests):
    daemon, (_, victim) = libvirtd_with_guests
    agent = make_agent(store, daemon, daemon.uri_qemu, interval=0.5)
    with Running(agent):
        wait_intervals(agent, 2)
        os.kill(daemon.qemu_pid(victim), signal.SIGKILL)
        while "domain_failed" not in event_kinds(store) and agent.collections_total < 100:
            wait_intervals(agent, 1)
    events = store.events(0)
    failed = events[events["kind"] == "domain_failed"]
    assert failed["domain"].tolist() == [victim]
    assert victim in failed["message"].iloc[0]
    assert failed["severity"].tolist() == ["critical"]


def test_the_agent_needs_only_the_read_only_socket(store, libvirtd_with_guests):
    daemon, names = libvirtd_with_guests
    uri = daemon.uri_qemu.replace("libvirt-sock", "libvirt-sock-ro")
    source = LibvirtSource(uri, call_timeout_seconds=PROBE_DEADLINE_SECONDS, read_only=True)
    agent = Agent(store, source, "hv-ro", interval_seconds=0.5)
    with Running(agent):
        wait_intervals(agent, 2)
        os.kill(daemon.qemu_pid(names[0]), signal.SIGKILL)
        while "domain_failed" not in event_kinds(store) and agent.collections_total < 100:
            wait_intervals(agent, 1)
    assert store.tag_values("domain", "domain") == sorted(names)
    assert "domain_failed" in event_kinds(store)  # events arrive on a read-only connection too
