"""`virtwatch soak` against a REAL private libvirtd (the test driver through the daemon) and a real store: it
records its load, removes every test domain it made and nothing else, stops cleanly on SIGINT, and reports a
SIGSTOPped daemon as timeouts instead of hanging. No wall-clock limits: steps are bounded by the soak itself."""

from __future__ import annotations

import collections
import io
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import libvirt
import pytest

from collector.soak.driver import RunMark, domain_xml
from collector.soak.plan import Mix, SoakPlan, parse_mix, parse_steps
from collector.soak.recorder import Recorder, StepTally, Tally, percentile
from collector.soak.report import ProgressLine, daemon_events, format_table, table_rows
from collector.soak.runner import Soak
from tsdb import Point, open_store
from virtwatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_HOST = 'hv 1,"soak"\\ ☃'
BYSTANDER = 'bystander, "virtwatch-soak-00000000-1"'
ALL_OPERATIONS = Mix({"stats": 40, "list": 20, "define": 20, "lifecycle": 20})
#: the deadline of every call in these tests, and of waiting for a condition (a safety net, never asserted)
CALL_TIMEOUT_SECONDS = 1.0
GUARD_SECONDS = 120.0


def plan_for(uri: str, **overrides) -> SoakPlan:
    """A short soak: two steps of 2 s, 1 then 3 clients, every operation."""
    settings = dict(uri=uri, steps=(1, 3), step_seconds=2.0, mix=ALL_OPERATIONS,
                    call_timeout_seconds=CALL_TIMEOUT_SECONDS, keepalive_interval_seconds=1, keepalive_count=1)
    return SoakPlan(**{**settings, **overrides})


def define_bystander(uri: str, name: str = BYSTANDER, xml: str | None = None) -> None:
    """Define a domain the soak did not make."""
    conn = libvirt.open(uri)
    try:
        conn.defineXML(xml or f"<domain type='test'><name>{name.replace('&', '&amp;').replace('<', '&lt;')}</name>"
                              "<memory>65536</memory><os><type>hvm</type></os></domain>")
    finally:
        conn.close()


def domain_names(uri: str) -> list[str]:
    """Every domain's name on the daemon."""
    conn = libvirt.open(uri)
    try:
        return sorted(dom.name() for dom in conn.listAllDomains(0))
    finally:
        conn.close()


def soak_names(uri: str) -> list[str]:
    """The names of every soak test domain on the daemon, whatever its run."""
    return [name for name in domain_names(uri) if name.startswith("virtwatch-soak-") and name != BYSTANDER]


@pytest.fixture
def test_uri(libvirtd):
    """The private daemon's test-driver URI, with a connection held open all along: the daemon drops the test
    driver's shared state (domains included) when its last connection closes."""
    keeper = libvirt.open(libvirtd.uri_test)
    yield libvirtd.uri_test
    keeper.close()


# --- the plan ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    ("", "separated by commas"),
    ("1,,8", "separated by commas"),
    ("1,x", "'x' is not a client count"),
    ("0", "'0' is not a client count"),
])
def test_bad_steps_say_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_steps(text)


@pytest.mark.parametrize("text, problem", [
    ("stats", "is not NAME=WEIGHT"),
    ("stats=5,reboot=1", "unknown operation 'reboot'"),
    ("stats=1,stats=2", "given twice"),
    ("stats=-1", "not a whole number"),
    ("stats=0,list=0", "every weight is 0"),
])
def test_a_bad_mix_says_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_mix(text)


def test_a_mix_leaves_out_operations_it_does_not_name_and_lists_their_calls():
    mix = parse_mix(" stats = 3 , define=1")
    assert mix.weights == {"stats": 3, "list": 0, "define": 1, "lifecycle": 0}
    assert mix.calls() == ("connect", "stats", "define", "undefine")
    assert mix.needs_domains() and not parse_mix("list=1").needs_domains()


@pytest.mark.parametrize("argv, line_start", [
    (["--steps", "1,zero"], "--steps '1,zero': 'zero' is not a client count"),
    (["--step-seconds", "-3"], "--step-seconds '-3': must be a positive"),
    (["--step-seconds", "nan"], "--step-seconds 'nan': must be a positive"),
    (["--duration", "soon"], "--duration 'soon': not a number"),
    (["--max-calls", "1.5"], "--max-calls '1.5': not a whole number"),
    (["--mix", "stats=1,burn=9"], "--mix 'stats=1,burn=9': unknown operation 'burn'"),
    (["--call-timeout", "0"], "--call-timeout '0': must be a positive"),
    (["--max-guests", "0"], "--max-guests '0': must be a positive"),
    (["--host-name", " "], "--host-name ' ': must not be empty"),
    (["--store", "gopher://x/y"], "--store 'gopher://x/y': "),
])
def test_bad_arguments_exit_2_with_one_line_naming_the_argument(argv, line_start, capsys, tmp_path):
    assert main(["soak", "--libvirt-uri", "test:///default", "--store", f"duckdb://{tmp_path}/s.duckdb",
                 *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith(line_start), err


def test_a_config_file_that_cannot_be_read_exits_2_naming_it(capsys, tmp_path):
    assert main(["soak", "--config", str(tmp_path / "absent.toml")]) == 2
    assert capsys.readouterr().err.startswith(f"--config {tmp_path / 'absent.toml'}: cannot read")


def test_a_daemon_that_cannot_be_reached_at_the_start_exits_1_naming_the_uri(capsys, tmp_path):
    uri = f"test+unix:///default?socket={tmp_path}/nobody.sock"
    assert main(["soak", "--libvirt-uri", uri, "--store", f"duckdb://{tmp_path}/s.duckdb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("--libvirt-uri: cannot connect to") and "nobody.sock" in err


# --- the tallies, the points and the table -----------------------------------------------------------------------

def test_percentiles_are_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([7.0], 0.99)) == (50.0, 99.0, 7.0)
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


@pytest.mark.influxdb
def test_a_recorder_writes_one_point_per_call_kind_with_running_totals(store):
    recorder = Recorder(("connect", "stats", "list"))
    step = recorder.open_step(4, 1_000)
    for milliseconds in (1, 2, 3, 100):
        recorder.record("stats", step, milliseconds / 1000, None)
    recorder.record("stats", step, 1.0, "timeout")
    recorder.record("list", step, 0.004, "VIR_ERR_NO_DOMAIN", "Domain not found: 'a, \"b\"'")
    recorder.record("list", step, 0.004, "VIR_ERR_NO_DOMAIN", "a later one")
    first = recorder.take_points(HOSTILE_HOST, "abcd1234", 4, 2.0, 10**18)
    recorder.record("stats", step, 0.005, None)
    second = recorder.take_points(HOSTILE_HOST, "abcd1234", 4, 1.0, 10**18 + 10**9)
    assert store.write(first + second) == 6
    fields = ["clients", "calls_total", "errors_total", "timeouts_total", "calls_per_second", "errors_per_second",
              "latency_p50_ms", "latency_p99_ms", "latency_max_ms"]
    frame = store.query("soak", fields, 0, 2**62, where={"host": HOSTILE_HOST}, group_by=["call", "run"])
    rows = {(row.call, int(row.time.value)): row for row in frame.itertuples()}
    stats = rows[("stats", 10**18)]
    assert (stats.run, stats.clients, stats.calls_total, stats.errors_total, stats.timeouts_total) == (
        "abcd1234", 4, 5, 1, 1)
    assert (stats.calls_per_second, stats.errors_per_second) == (2.5, 0.5)
    assert (stats.latency_p50_ms, stats.latency_max_ms) == pytest.approx((2.0, 100.0))  # the timeout left out
    assert rows[("list", 10**18)].latency_p50_ms == pytest.approx(4.0)  # a libvirt error is an answer
    assert rows[("connect", 10**18)].calls_per_second == 0.0
    later = rows[("stats", 10**18 + 10**9)]
    assert (later.calls_total, later.errors_total, later.calls_per_second) == (6, 1, 1.0)
    assert rows[("list", 10**18)].errors_total == 2
    assert recorder.steps[step].tally.calls == 8 and recorder.steps[step].tally.answered == 7
    assert recorder.first_errors == {"timeout": ("stats", ""),
                                     "VIR_ERR_NO_DOMAIN": ("list", "Domain not found: 'a, \"b\"'")}


def step(index: int, clients: int, start_ns: int, end_ns: int, **errors) -> StepTally:
    """A finished step with two answered calls (1 and 3 ms) and the given failures."""
    tally = Tally()
    for milliseconds in (1.0, 3.0):
        tally.add(milliseconds, None)
    for kind, count in errors.items():
        for _ in range(count):
            tally.add(1000.0, kind.replace("_", " "))
    return StepTally(index, clients, start_ns, end_ns, (end_ns - start_ns) / 1e9, tally)


@pytest.mark.influxdb
def test_the_table_shows_the_agents_events_per_step_or_says_there_is_no_agent_data(store):
    second = 10**9
    base = 1_700_000_000 * second
    steps = [step(0, 1, base, base + 60 * second), step(1, 8, base + 60 * second, base + 120 * second),
             step(2, 32, base + 200 * second, base + 260 * second, timeout=3, connection_lost=1)]
    agent = [Point("libvirtd", {"host": HOSTILE_HOST}, {"up": 1}, base + t * second) for t in range(0, 125, 10)]
    events = [Point("event", {"host": HOSTILE_HOST, "kind": kind, "severity": "critical"},
                    {"message": "m", "count": 1}, base + t * second)
              for kind, t in (("hang_start", 70), ("daemon_down", 80), ("hang_start", 90))]
    other_host = Point("event", {"host": "hv2", "kind": "segfault", "severity": "critical"}, {"message": "m"},
                       base + 10 * second)
    store.write(agent + events + [other_host])
    cells = daemon_events(store, HOSTILE_HOST, steps)
    assert cells == ["none", "hang_start 2, daemon_down 1", "no agent data"]
    text = format_table(table_rows(steps, cells))
    assert text.splitlines()[0].split() == ["step", "clients", "seconds", "calls", "calls/s", "p50", "ms", "p99",
                                            "ms", "errors", "daemon", "events"]
    header, last = text.splitlines()[0], text.splitlines()[4]
    assert last.startswith("   3       32") and header.startswith("step  clients")  # numbers right-aligned
    assert "timeout 3, connection lost 1" in text.splitlines()[4]


class FakeClock:
    """A clock the test moves."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeSoak:
    """The two things the progress line reads from a soak."""

    def __init__(self):
        self.recorder = Recorder()
        self.recorder.open_step(8, time.time_ns())


def test_the_progress_line_is_rewritten_in_place_on_a_terminal_and_printed_every_10_s_otherwise():
    clock, soak = FakeClock(), FakeSoak()
    terminal, log = io.StringIO(), io.StringIO()
    on_tty = ProgressLine(terminal, 4, 240, is_tty=True, clock=clock)
    plain = ProgressLine(log, 4, 240, is_tty=False, clock=clock)
    for now in (0.0, 0.2, 0.6, 5.0, 10.5):
        clock.now = now
        on_tty.update(soak, now)
        plain.update(soak, now)
    on_tty.finish()
    assert terminal.getvalue().count("\r") == 4 and terminal.getvalue().endswith("\x1b[K\n")
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("soak step 1/4: 8 clients, ")
    assert lines[1].endswith(", 0 errors, 0:10/4:00")


# --- bounds, in-process (the test driver in this process; only read-only calls) ---------------------------------

def test_max_calls_and_duration_end_a_soak_early(duckdb_store):
    reads = Mix({"stats": 1, "list": 1, "define": 0, "lifecycle": 0})
    plan = plan_for("test:///default", steps=(2, 2), step_seconds=3600.0, max_calls=300, mix=reads)
    result = Soak(plan, duckdb_store, "hv-bounds").run(threading.Event())
    assert result.ended_by == "max-calls" and len(result.steps) == 1
    assert sum(s.tally.calls for s in result.steps) <= 300
    plan = plan_for("test:///default", steps=(1, 1), step_seconds=3600.0, duration_seconds=0.5, mix=reads)
    result = Soak(plan, duckdb_store, "hv-bounds").run(threading.Event())
    assert result.ended_by == "duration" and len(result.steps) == 1


def test_an_unreachable_store_loses_the_soak_points_but_never_stops_or_stalls_the_soak(capsys, tmp_path):
    reads = ["--mix", "stats=1,list=1", "--steps", "1", "--step-seconds", "0.5"]
    status = main(["soak", "--libvirt-uri", "test:///default", "--store", "influxdb://127.0.0.1:1/virtwatch", *reads])
    out, err = capsys.readouterr()
    assert status == 0 and "ended by steps; 0 soak points written" in out
    assert "store: 6 soak points could not be written to influxdb://127.0.0.1:1/virtwatch" in err


# --- against a private libvirtd ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_short_soak_records_its_load_and_removes_every_domain_it_created(test_uri, duckdb_store):
    uri = test_uri
    define_bystander(uri)
    seen_during = []
    soak = Soak(plan_for(uri), duckdb_store, HOSTILE_HOST,
                on_step=lambda index, _clients: seen_during.append(soak_names(uri)) if index == 1 else None)
    result = soak.run(threading.Event())
    report = soak.cleanup()
    assert result.ended_by == "steps" and [s.clients for s in result.steps] == [1, 3]
    assert seen_during[0] and all(name.startswith(f"virtwatch-soak-{soak.run_id}-") for name in seen_during[0])
    assert not report.left and report.error is None
    # the lifecycle guests live until the end (define's own domains come and go during the run)
    assert report.removed and all(name.startswith(f"virtwatch-soak-{soak.run_id}-") for name in report.removed)
    assert soak_names(uri) == [] and domain_names(uri) == sorted([BYSTANDER, "test"])
    frame = duckdb_store.query("soak", ["clients", "calls_total", "calls_per_second"], 0, 2**62,
                               where={"host": HOSTILE_HOST, "run": soak.run_id}, group_by=["call"])
    assert {"stats", "list", "define", "undefine", "create", "suspend"} <= set(frame["call"])
    assert set(frame["clients"]) == {1.0, 3.0}
    assert frame.groupby("call")["calls_total"].max()["stats"] > 0
    assert result.points_written == len(frame) and result.points_lost == 0
    assert all(s.tally.errors.get("timeout", 0) == 0 for s in result.steps) and not result.last_step_unanswered()


@pytest.mark.slow
def test_a_sigstopped_daemon_shows_up_as_timeouts_in_the_table_not_as_a_hung_soak(libvirtd, test_uri,
                                                                                   duckdb_store):
    def stop_the_daemon_at_step_2(index: int, _clients: int) -> None:
        """SIGSTOP libvirtd just before the second step starts."""
        if index == 1:
            libvirtd.kill(signal.SIGSTOP)

    soak = Soak(plan_for(test_uri, step_seconds=3.0), duckdb_store, "hv-stopped",
                on_step=stop_the_daemon_at_step_2)
    try:
        result = soak.run(threading.Event())  # returns: the soak itself never hangs
    finally:
        libvirtd.kill(signal.SIGCONT)
    before, stopped = result.steps  # a call in flight when the daemon stopped counts in step 1
    assert before.tally.answered > 0 and before.tally.errors.get("timeout", 0) <= 1
    assert stopped.tally.errors["timeout"] > 0 and stopped.tally.answered == 0
    assert result.last_step_unanswered()
    text = format_table(table_rows(result.steps, daemon_events(duckdb_store, "hv-stopped", result.steps)))
    assert "timeout" in text.splitlines()[3] and "no agent data" in text
    report = soak.cleanup()
    assert not report.left and report.error is None and soak_names(test_uri) == []


@pytest.mark.slow
def test_sigint_stops_a_soak_that_cleans_up_and_exits_130(test_uri, tmp_path):
    uri = test_uri
    define_bystander(uri)
    store_url = f"duckdb://{tmp_path}/soak.duckdb"
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "virtwatch", "soak", "--libvirt-uri", uri, "--store", store_url,
             "--host-name", "hv-sigint", "--steps", "2,4", "--step-seconds", "3600", "--mix", "lifecycle=1,define=1",
             "--call-timeout", "5"], stdout=out, stderr=err, cwd=ROOT)
        try:
            guard = time.monotonic() + GUARD_SECONDS
            while len(soak_names(uri)) < 2 and process.poll() is None and time.monotonic() < guard:
                time.sleep(0.05)
            assert soak_names(uri), (tmp_path / "err").read_text()
            process.send_signal(signal.SIGINT)
            status = process.wait(GUARD_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
    output = (tmp_path / "out").read_text()
    assert status == 130, (tmp_path / "err").read_text()
    assert "ended by stop" in output and output.splitlines()[1].startswith("step  clients")
    assert soak_names(uri) == [] and domain_names(uri) == sorted([BYSTANDER, "test"])
    with open_store(store_url) as store:
        assert store.tag_values("soak", "host") == ["hv-sigint"]


@pytest.mark.slow
def test_cleanup_only_removes_leftovers_of_dead_runs_and_no_other_domain(test_uri, capsys):
    uri = test_uri
    here = socket.gethostname()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", "soak"])
    try:
        define_bystander(uri, xml=domain_xml("virtwatch-soak-0badc0de-1", RunMark("0badc0de", dead_pid, here),
                                             "test"))  # a crashed run's leftover: removed
        define_bystander(uri, xml=domain_xml("virtwatch-soak-0badc0de-2", RunMark("0badc0de", 1, "elsewhere"),
                                             "test"))  # another host's dead run, same daemon: removed
        define_bystander(uri, xml=domain_xml("virtwatch-soak-1ea1ab1e-1", RunMark("1ea1ab1e", alive.pid, here),
                                             "test"))  # a run still going on this host: kept
        define_bystander(uri, name="virtwatch-soak-12345678-9")  # our name, not our metadata: kept
        define_bystander(uri, xml=domain_xml("virtwatch-soak-feedf00d-1", RunMark("0badc0de", dead_pid, here),
                                             "test"))  # metadata of another run than its name says: kept
        define_bystander(uri)
        assert main(["soak", "--cleanup-only", "--libvirt-uri", uri]) == 0
    finally:
        alive.kill()
        alive.wait()
    out, err = capsys.readouterr()
    assert out == f"removed 2 test domains of earlier soak runs from {uri}\n"
    assert "1 test domains of soak runs still running" in err
    assert domain_names(uri) == sorted([BYSTANDER, "test", "virtwatch-soak-12345678-9", "virtwatch-soak-1ea1ab1e-1",
                                        "virtwatch-soak-feedf00d-1"])


def test_every_thread_a_soak_leaves_behind_is_a_daemon_thread(duckdb_store):
    """Guard against a leaked non-daemon thread: every thread the soak starts is a daemon thread."""
    soak = Soak(plan_for("test:///default", steps=(2,), step_seconds=0.3,
                         mix=Mix({"stats": 1, "list": 0, "define": 0, "lifecycle": 0})),
                duckdb_store, "hv-threads")
    before = set(threading.enumerate())
    soak.run(threading.Event())
    assert all(thread.daemon for thread in set(threading.enumerate()) - before)
    assert collections.Counter(type(t).__name__ for t in set(threading.enumerate()) - before).get("Client", 0) == 0


