"""Which guests' QEMU processes cannot answer (collector.guest_processes), on fixture trees of pidfiles and /proc."""

from __future__ import annotations

from pathlib import Path

from collector.guest_processes import GuestProcesses


def stat_line(pid: int, comm: str, state: str) -> str:
    rest = " ".join(["0"] * 40)
    return f"{pid} ({comm}) {state} {rest}\n"


def make_tree(tmp_path: Path, guests: dict[str, tuple[int, str, str]]) -> tuple[Path, Path]:
    """pidfiles in run/ (names XML-escaped as libvirt 9.0 writes them) and /proc/PID/stat files in proc/."""
    run, proc = tmp_path / "run", tmp_path / "proc"
    run.mkdir()
    for pidfile_name, (pid, comm, state) in guests.items():
        (run / f"{pidfile_name}.pid").write_text(str(pid))
        (proc / str(pid)).mkdir(parents=True, exist_ok=True)
        (proc / str(pid) / "stat").write_text(stat_line(pid, comm, state))
    return run, proc


def test_stopped_and_uninterruptible_qemu_processes_are_stuck_the_others_are_not(tmp_path):
    run, proc = make_tree(tmp_path, {"calm": (10, "qemu-system-x86", "S"), "stopped": (11, "qemu-system-x86", "T"),
                                     "disk": (12, "qemu-kvm", "D")})
    stuck = GuestProcesses(run, proc).stuck(["calm", "stopped", "disk", "not-running"])
    assert {name: (g.pid, g.state) for name, g in stuck.items()} == {"stopped": (11, "T"), "disk": (12, "D")}
    assert stuck["stopped"].describe() == "its QEMU process (pid 11) is stopped (state T)"
    assert "uninterruptible sleep (state D)" in stuck["disk"].describe()


def test_a_hostile_guest_name_is_found_under_the_escaped_pidfile_name_libvirt_writes(tmp_path):
    name = 'guest 2,"b" & <c>'
    run, proc = make_tree(tmp_path, {"guest 2,&quot;b&quot; &amp; &lt;c&gt;": (20, "qemu-system-x86", "T")})
    assert list(GuestProcesses(run, proc).stuck([name])) == [name]


def test_a_pid_reused_by_another_program_is_not_a_stuck_guest(tmp_path):
    run, proc = make_tree(tmp_path, {"vm": (30, "bash", "T")})
    assert GuestProcesses(run, proc).stuck(["vm"]) == {}


def test_a_restarted_guest_is_followed_to_its_new_pid(tmp_path):
    run, proc = make_tree(tmp_path, {"vm": (40, "qemu-system-x86", "S")})
    guests = GuestProcesses(run, proc)
    assert guests.stuck(["vm"]) == {}
    (proc / "40" / "stat").unlink()  # the old process is gone, libvirt wrote the new pid
    (run / "vm.pid").write_text("41")
    (proc / "41").mkdir()
    (proc / "41" / "stat").write_text(stat_line(41, "qemu-system-x86", "T"))
    assert guests.stuck(["vm"])["vm"].pid == 41


def test_without_a_pid_dir_nothing_is_known_and_nothing_is_stuck(tmp_path):
    assert GuestProcesses(None).stuck(["vm"]) == {}
    assert GuestProcesses(tmp_path / "missing").stuck(["vm", "../etc/passwd"]) == {}
