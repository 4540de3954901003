"""The agent's diagnoses of the simulated failures: cause sentences on events, diagnosis points that agree with the
libvirtd points, one forensics bundle per incident that the agent's own parsers read back."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from simulated_fleets import END_NS

from collector.daemon_log import parse_lines
from collector.job_locks import JobLocks
from collector.kmsg import GENERIC_THREAD_NAMES, looks_like_daemon_thread, parse_segfault
from simulator import FleetSpec, simulate
from simulator.diagnoses import FORENSICS_DIR, LIBVIRT_SO
from tsdb.forensics import decode_bundle

S = 10**9
DEADLINE_S = 5.0  # the probe deadline: the agent says hung 5 s after the probe it sent
OPENINGS = {"hang_start": "hung 5 s: ", "segfault": "crashed: ", "restart": "restarted: "}
BUNDLE_KEYS = {"version", "host", "trigger", "time_ns", "time", "cause", "diagnosis", "steps", "pool", "clients",
               "job_holders", "daemon_log", "kernel_log", "qemu", "capture_ms"}


def hangs_by_start(sim) -> dict:
    """Return every hang by (host, hang_start time)."""
    return {(sim.hosts[h], hang.start_ns): hang for h, history in enumerate(sim.histories) for hang in history.hangs}


def hang_of(sim, row):
    """Return the hang a forensics point was captured in."""
    (hang,) = [h for (host, _), h in hangs_by_start(sim).items()
               if host == row.host and h.start_ns < row.time_ns < h.end_ns]
    return hang


def of_hang(rows: pd.DataFrame, hang, host: str) -> pd.DataFrame:
    """Return the rows of one host within one hang (from its hang_start to its end)."""
    return rows[(rows.host == host) & (rows.time_ns >= hang.start_ns) & (rows.time_ns < hang.end_ns)]


@pytest.fixture(scope="module")
def bundles(frames):
    """Every forensics point's fields with its bundle decoded, by time."""
    rows = frames["forensics"].sort_values("time_ns", kind="stable")
    return [(row, decode_bundle(row.bundle, row.encoding)) for row in rows.itertuples()]


def test_every_hang_start_segfault_and_restart_says_its_cause_and_a_diagnosis_point_goes_with_it(busy, frames):
    sim, _points = busy
    diagnoses = frames["diagnosis"]
    explained = sim.events[sim.events.kind.isin(list(OPENINGS))]
    with_trigger = diagnoses[diagnoses.trigger.isin(list(OPENINGS))]
    assert len(explained) == len(with_trigger) >= 100
    merged = explained.merge(with_trigger, left_on=["host", "time_ns", "kind"],
                             right_on=["host", "time_ns", "trigger"], how="left", validate="one_to_one")
    assert (merged.message == merged.cause).all()
    for row in merged.itertuples():
        assert row.message.startswith(f"libvirtd on {row.host} {OPENINGS[row.kind]}"), row.message


def test_a_hang_is_diagnosed_at_each_of_its_points_with_the_figures_of_the_libvirtd_point(busy, frames):
    sim, _points = busy
    daemon, diagnoses = frames["libvirtd"], frames["diagnosis"]
    hung = daemon[daemon.hung == 1].merge(diagnoses[diagnoses.trigger == "hang"], on=["host", "time_ns"],
                                          how="outer", suffixes=("", "_diagnosis"), indicator=True)
    assert (hung._merge == "both").all() and len(hung) >= 50  # a diagnosis exactly where a point is hung
    assert np.allclose(hung.hang_seconds, hung.hang_seconds_diagnosis, rtol=0, atol=5e-4)  # the agent rounds to ms
    assert (hung.threads == hung.threads_diagnosis).all()
    fresh = hung[hung.process_state != "T"]  # a stopped daemon's admin API answers nothing: its last reading
    assert len(fresh) > len(hung) // 2
    assert (fresh.workers_busy == fresh.workers_current - fresh.workers_free).all()
    assert (fresh.job_queue_depth == fresh.job_queue_depth_diagnosis).all()
    assert (fresh.clients_listed == fresh.clients).all()
    stale = hung[hung.process_state == "T"]
    assert len(stale) and (stale.pool_age_seconds > stale.hang_seconds).all()
    assert (stale.cause.str.contains(r"is stopped \(state T\), all \d+ of its threads")).all()
    for (host, start), hang in hangs_by_start(sim).items():
        seconds = of_hang(diagnoses, hang, host).sort_values("time_ns").hang_seconds.to_numpy()
        assert seconds[0] == DEADLINE_S and (np.diff(seconds) > 0).all()


def test_the_job_holder_shows_from_30_seconds_into_a_hang_on_a_stuck_guest(busy, frames):
    sim, _points = busy
    diagnoses = frames["diagnosis"]
    held = 0
    for (host, _start), hang in hangs_by_start(sim).items():
        rows = of_hang(diagnoses, hang, host)
        if hang.cause not in ("guest_stopped", "guest_disk"):
            assert rows.job_domain.isna().all() and (rows.stuck_guests == 0).all()
            continue
        guest = sim.fleet.domain_names[sim.hosts.index(host)][hang.guest]
        state = {"guest_stopped": "stopped (state T)", "guest_disk": "in uninterruptible sleep (state D)"}
        said = f"they wait on guest '{guest}' whose QEMU is {state[hang.cause]}"
        assert rows.cause.str.contains(said, regex=False).all()
        assert (rows.stuck_guest_names_json == json.dumps([guest])).all()
        shown = rows[rows.job_domain.notna()]
        assert (rows.job_domain.notna() == (rows.hang_seconds >= 30)).all()
        assert (shown.job_domain == guest).all()
        assert (shown.job_age_seconds == 30 * (shown.hang_seconds // 30)).all()
        assert shown.apply(lambda r: f"its job held {r.job_age_seconds:.0f} s by thread {r.job_holder_thread:.0f} in "
                           f"{r.job_holder_api} (daemon log)" in r.cause, axis=1).all()
        held += len(shown)
    assert held >= 20


def test_a_host_gets_one_bundle_per_incident_and_at_most_one_in_five_minutes(busy, frames):
    sim, _points = busy
    bundles = frames["forensics"]
    for host, times in bundles.groupby("host").time_ns:
        assert (np.diff(np.sort(times.to_numpy())) >= 300 * S).all(), host
    hangs = hangs_by_start(sim)
    for row in bundles.itertuples():
        if row.trigger == "hang":
            assert row.time_ns >= hang_of(sim, row).began_ns + 10 * S
        else:
            assert ((sim.events.host == row.host) & (sim.events.kind == row.trigger)
                    & (sim.events.time_ns == row.time_ns)).sum() == 1
    captured = set(zip(bundles.host, bundles.time_ns))
    for (host, _start), hang in hangs.items():  # 10 s in, unless another bundle came less than 300 s before
        ten_in = hang.began_ns + 10 * S
        before = bundles[(bundles.host == host) & (bundles.time_ns < ten_in)].time_ns
        if hang.end_ns > ten_in and (before.empty or ten_in - before.max() >= 300 * S):
            assert (host, ten_in) in captured
    segfaults = sim.events[sim.events.kind == "segfault"]
    assert len(bundles[bundles.trigger == "segfault"]) >= len(segfaults) // 2
    after_crash = sim.failures[(sim.failures.kind == "restart") & (sim.failures.cause == "segfault")]
    assert not set(zip(after_crash.host, after_crash.time_ns)) & captured  # the segfault's bundle tells it


def test_a_bundle_holds_what_the_agent_captures_and_its_point_describes_it(busy, frames, bundles):
    sim, _points = busy
    diagnoses = frames["diagnosis"]
    for row, bundle in bundles:
        assert BUNDLE_KEYS <= set(bundle) and bundle["version"] == 1
        assert (bundle["host"], bundle["trigger"], bundle["time_ns"]) == (row.host, row.trigger, row.time_ns)
        assert bundle["cause"] == row.cause and bundle["capture_ms"] == row.capture_ms
        assert row.size_bytes == len(json.dumps(bundle, ensure_ascii=False, indent=1).encode())
        assert row.steps_cut == ",".join(s["name"] for s in bundle["steps"] if s["status"] != "ok")
        assert row.file.startswith(FORENSICS_DIR + "/") and f"-{row.trigger}-{row.host}.json" in row.file
        assert bundle["diagnosis"]["hang_seconds"] == (0.0 if row.trigger != "hang" else
                                                       round((row.time_ns - hang_of(sim, row).began_ns) / S, 3))
        records, malformed = parse_lines(bundle["daemon_log"])
        assert malformed == 0 and len(records) == len(bundle["daemon_log"]) >= 1
        assert all(record.time_ns <= row.time_ns for record in records)
        running = [g["domain"] for g in bundle["qemu"]]
        assert running == sorted(running) and set(running) <= set(sim.fleet.domain_names[sim.hosts.index(row.host)])
        threads = bundle.get("threads", [])
        if row.trigger == "segfault":
            assert not threads and "process" not in bundle and set(row.steps_cut.split(",")) == {"process", "admin"}
            continue
        names = [t["name"] for t in threads]
        assert all(looks_like_daemon_thread(name) or name in GENERIC_THREAD_NAMES for name in names), names
        assert threads[0]["name"] == "libvirtd" and threads[0]["tid"] == bundle["process"]["pid"]
        assert len({t["tid"] for t in threads}) == len(threads) == bundle["process"]["threads"]
        assert sum(name.startswith("vm-") for name in names) == len(running)
        assert all(t["stack"] and t["wchan"] and t["syscall"] for t in threads)
        if row.trigger == "hang":
            assert len(threads) == bundle["diagnosis"]["threads"]
    assert {row.trigger for row, _bundle in bundles} == {"hang", "segfault", "restart"}
    assert len(diagnoses) > len(bundles)


def test_threads_stop_or_block_as_the_hang_says(busy, bundles):
    sim, _points = busy
    seen = set()
    for row, bundle in bundles:
        if row.trigger != "hang":
            continue
        cause = hang_of(sim, row).cause
        seen.add(cause)
        states = {t["state"] for t in bundle["threads"]}
        stuck = [g for g in bundle["qemu"] if g["state"] != "S"]
        if cause == "daemon_stopped":
            assert states == {"T"} and bundle["process"]["state"] == "T" and row.steps_cut == "admin"
            assert {t["wchan"] for t in bundle["threads"]} == {"do_signal_stop"} and "note" in bundle["pool"]
        elif cause == "daemon_disk":
            disk = [t for t in bundle["threads"] if t["state"] == "D"]
            assert states == {"S", "D"} and 1 <= len(disk) <= 3 and not stuck
            assert {(t["name"], t["wchan"]) for t in disk} == {("rpc-libvirtd", "rpc_wait_bit_killable")}
            assert f"rpc-libvirtd {disk[0]['tid']} in rpc_wait_bit_killable" in row.cause
        else:
            assert states == {"S"} and [g["state"] for g in stuck] == ["T" if cause == "guest_stopped" else "D"]
            assert bundle["pool"]["workers_free"] == 0 and bundle["pool"]["workers_current"] == 20
    assert seen == {"guest_stopped", "guest_disk", "daemon_disk", "daemon_stopped"}


def test_a_segfault_bundle_holds_the_kernels_line_and_the_faulting_threads_name(busy, bundles):
    sim, _points = busy
    crashes = {(sim.hosts[h], c.time_ns): c for h, history in enumerate(sim.histories) for c in history.crashes}
    checked = 0
    for row, bundle in bundles:
        if row.trigger != "segfault":
            continue
        crash = crashes[(row.host, row.time_ns)]
        fault = parse_segfault(bundle["kernel_line"])
        assert (fault.thread_name, fault.tid) == (crash.thread, crash.tid)
        seen = {int(tid): name for tid, name in bundle["threads_seen_before"].items()}
        assert seen[crash.tid] == crash.thread and seen[crash.pid] == "libvirtd"
        assert fault.tid in seen  # a thread of the crashed process, as the agent read it
        if fault.region is not None:
            assert fault.region == LIBVIRT_SO
            assert fault.region_start <= fault.ip < fault.region_start + fault.region_size
        else:
            assert fault.ip == 0
        assert bundle["kernel_log"][0].endswith(bundle["kernel_line"]) and "Code: " in bundle["kernel_log"][1]
        assert row.cause.startswith(f"libvirtd on {row.host} crashed: {fault.describe()} of libvirtd "
                                    f"(pid {crash.pid}); before it: ")
        assert row.cause.endswith("; no libvirtd process is running")
        checked += 1
    assert checked >= 20


def test_a_restart_says_what_ended_the_old_process(busy):
    sim, _points = busy
    messages = sim.events.set_index(["host", "kind", "time_ns"]).message
    said = {"segfault": 0, "other": 0}
    for h, history in enumerate(sim.histories):
        host = sim.hosts[h]
        for i, cause in enumerate(history.restart_causes, start=1):
            message = messages[(host, "restart", history.process_start_ns[i])]
            pids = f"pid {history.pids[i - 1]} → {history.pids[i]}"
            assert message.startswith(f"libvirtd on {host} restarted: {pids}; ")
            if cause == "segfault":
                (crash,) = [c for c in history.crashes if c.pid == history.pids[i - 1]]
                crashed = messages[(host, "segfault", crash.time_ns)].split("crashed: ")[1].split("; ")[0]
                seconds = (history.process_start_ns[i] - crash.time_ns) / S
                assert f"; the old process crashed {seconds:.0f} s before: {crashed}; before it: " in message
                said["segfault"] += 1
            else:
                assert "; no segfault of the old process in the kernel log: it exited or was killed" in message
                said["other"] += 1
    assert min(said.values()) >= 10


def test_the_job_holder_a_bundles_daemon_log_names_is_the_one_its_diagnosis_names(bundles):
    with_holder = [(row, bundle) for row, bundle in bundles if bundle["job_holders"]]
    assert with_holder  # a hang the gap held back past 30 s: the waiters had logged by then
    for row, bundle in with_holder:
        locks = JobLocks(clock=lambda: row.time_ns / S)
        records, _malformed = parse_lines(bundle["daemon_log"])
        for record in records:
            locks.observe(record)
        (holder,) = locks.holders()
        diagnosis = bundle["diagnosis"]
        assert (holder.domain, holder.holder_thread, holder.holder_api, holder.waiting_api, holder.age_seconds) == (
            diagnosis["job_domain"], diagnosis["job_holder_thread"], diagnosis["job_holder_api"],
            diagnosis["job_waiting_api"], diagnosis["job_age_seconds"])
        assert locks.unpaired_timeouts_total == 0
        assert bundle["job_holders"][0]["description"] == holder.describe()


def test_the_lock_timeouts_of_a_hang_on_a_stuck_guest_count_in_log_errors(busy, frames):
    sim, _points = busy
    daemon = frames["libvirtd"]
    for (host, _start), hang in hangs_by_start(sim).items():
        inside = of_hang(daemon, hang, host).sort_values("time_ns")
        if len(inside) < 2:
            continue
        rounds = np.diff((inside.time_ns.to_numpy() - hang.began_ns) // (30 * S))
        grew = np.diff(inside.log_errors_total.to_numpy())
        if hang.cause in ("guest_stopped", "guest_disk"):
            assert (grew >= 19 * rounds).all(), host  # 19 waiting workers give up every 30 s
        else:
            assert (grew < 19).all(), host


def test_the_demo_hang_names_the_stopped_guest_its_job_holder_and_the_clients():
    sim = simulate(FleetSpec(end_ns=END_NS))
    truth = sim.failures
    (start,) = truth[(truth.cause == "hang") & (truth.kind == "hang_start")].itertuples()
    h = sim.hosts.index(start.host)
    (hang,) = [x for x in sim.histories[h].hangs if x.start_ns == start.time_ns]
    guest = sim.fleet.domain_names[h][hang.guest]
    message = sim.events[(sim.events.time_ns == start.time_ns) & (sim.events.kind == "hang_start")].message.item()
    assert re.fullmatch(
        rf"libvirtd on {start.host} hung 5 s: 20 of 20 workers busy, \d+ calls queued; they wait on guest '{guest}' "
        r"whose QEMU is stopped \(state T\); \d+ connections from [\w-]+ \(pid \d+\), 1 from the virtwatch agent "
        r"itself \(pid \d+\); the stats probe has had no answer for 5.0 s \(deadline 5 s\)", message), message
    rows = [(t, m, tags, f) for t, (m, tags, f) in zip(sim.diagnoses.times.tolist(), sim.diagnoses.rows)
            if tags["host"] == start.host and hang.start_ns <= t < hang.end_ns]
    causes = [f["cause"] for _t, m, _tags, f in rows if m == "diagnosis"]
    assert len(causes) == 26  # hang_start and each minute of the 25
    assert re.search(r"its job held \d+ s by thread \d+ in remoteDispatchDomainMemoryStats \(daemon log\)", causes[-1])
    (bundle_row,) = [(t, f) for t, m, _tags, f in rows if m == "forensics"]
    assert bundle_row[0] == hang.began_ns + 10 * S
    bundle = decode_bundle(bundle_row[1]["bundle"], bundle_row[1]["encoding"])
    assert [g["state"] for g in bundle["qemu"] if g["domain"] == guest] == ["T"]
    assert bundle["cause"].startswith(f"libvirtd on {start.host} hung 10 s: 20 of 20 workers busy")
