"""Guests' QEMU processes seen from /proc: which are stopped (T) or in uninterruptible sleep (D).

A guest whose QEMU process cannot run cannot answer its monitor, and the first libvirt call to reach it takes
its job and waits for ever (shared/notes/libvirt.md): the agent must not be that call. libvirt's QEMU driver
writes each running guest's pid to `<qemu_pid_dir>/<name>.pid` (/run/libvirt/qemu for the system daemon,
libvirt src/qemu/qemu_process.c). Reading /proc/PID/stat needs no call into libvirt and does not block on a
process in D state (unlike /proc/PID/cmdline, which takes the process's mmap lock). The pid of each guest is
cached and the pidfile read again only when that pid no longer is a QEMU process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from xml.sax.saxutils import escape, unescape

from collector.daemon_process import parse_stat

XML_QUOTES = {'"': "&quot;", "'": "&apos;"}
STUCK_STATES = {"T": "stopped (state T)", "t": "stopped by a tracer (state t)",
                "D": "in uninterruptible sleep (state D)"}


@dataclass(frozen=True)
class StuckGuest:
    """A guest whose QEMU process cannot answer its monitor: its pid and /proc state letter."""

    pid: int
    state: str

    def describe(self) -> str:
        """Return the reason in words, e.g. 'its QEMU process (pid 42) is stopped (state T)'."""
        return f"its QEMU process (pid {self.pid}) is {STUCK_STATES.get(self.state, f'in state {self.state}')}"


class GuestProcesses:
    """Finds each guest's QEMU process through libvirt's pidfiles and reads its state from /proc."""

    def __init__(self, pid_dir: Path | None, proc_root: Path = Path("/proc")):
        self.pid_dir = pid_dir
        self.proc_root = proc_root
        self._pids: dict[str, int] = {}

    def stuck(self, names: Iterable[str]) -> dict[str, StuckGuest]:
        """Return the guests among `names` whose QEMU process is stopped or in D state."""
        if self.pid_dir is None:
            return {}
        found = {}
        seen = set()
        for name in names:
            seen.add(name)
            state = self._state(name)
            if state is not None and state[1] in STUCK_STATES:
                found[name] = StuckGuest(*state)
        for gone in set(self._pids) - seen:
            del self._pids[gone]
        return found

    def names_from_pidfiles(self) -> list[str]:
        """Return the guests that have a pidfile (all running guests, as libvirt's QEMU driver knows them)."""
        if self.pid_dir is None:
            return []
        try:
            files = [entry.name for entry in self.pid_dir.iterdir() if entry.name.endswith(".pid")]
        except OSError:
            return []
        return sorted(unescape(name[:-4], {v: k for k, v in XML_QUOTES.items()}) for name in files)

    def states(self) -> dict[str, tuple[int, str]]:
        """Return {guest: (QEMU pid, state letter)} of every guest with a pidfile whose QEMU process lives."""
        found = {}
        for name in self.names_from_pidfiles():
            state = self._state(name)
            if state is not None:
                found[name] = state
        return found

    def _state(self, name: str) -> tuple[int, str] | None:
        """Return (pid, state letter) of a guest's QEMU process, None when it has none."""
        pid = self._pids.get(name)
        if pid is not None:
            state = self._qemu_state(pid)
            if state is not None:
                return pid, state
        pid = self._read_pidfile(name)
        if pid is None:
            self._pids.pop(name, None)
            return None
        state = self._qemu_state(pid)
        if state is None:
            self._pids.pop(name, None)
            return None
        self._pids[name] = pid
        return pid, state

    def _read_pidfile(self, name: str) -> int | None:
        """Read `<name>.pid`: libvirt 9.0 writes the name XML-escaped (`a&amp;b.pid`; measured), so that
        spelling is tried first."""
        if "/" in name or name in (".", ".."):
            return None
        for spelling in dict.fromkeys((escape(name, XML_QUOTES), name)):
            try:
                text = (self.pid_dir / f"{spelling}.pid").read_text().strip()
            except (OSError, UnicodeDecodeError):
                continue
            return int(text) if text.isdigit() else None
        return None

    def _qemu_state(self, pid: int) -> str | None:
        """Return the state letter of pid when it is a QEMU process, else None."""
        try:
            stat = parse_stat((self.proc_root / str(pid) / "stat").read_text())
        except (OSError, ValueError):
            return None
        return str(stat["state"]) if str(stat["comm"]).startswith("qemu") else None
