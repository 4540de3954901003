"""Faults staged the way production has them, for tests and benchmarks (shared/notes/libvirt.md).

`PoolHang` is the real production hang: one guest's QEMU process stopped and many clients, each on its own
connection, calling memoryStats on it in a loop. The first caller takes the guest's job and blocks on its
monitor; the others wait 30 s each for the job lock, holding every worker of a daemon with max_workers = 10,
so calls of anyone else wait in the queue while the daemon process runs (state S).
"""

from __future__ import annotations

import os
import signal
import threading

import libvirt

from libvirtd import PrivateLibvirtd, wait_state

POOL_HANG_CLIENTS = 14


class PoolHang:
    """Stop `guest`'s QEMU and keep `clients` connections calling memoryStats on it; undo on exit."""

    def __init__(self, daemon: PrivateLibvirtd, guest: str, clients: int = POOL_HANG_CLIENTS):
        self.daemon = daemon
        self.guest = guest
        self.clients = clients
        self.qemu_pid: int | None = None
        self.calls_total = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "PoolHang":
        self.qemu_pid = self.daemon.qemu_pid(self.guest)
        assert self.qemu_pid, f"guest {self.guest!r} has no QEMU process"
        os.kill(self.qemu_pid, signal.SIGSTOP)
        wait_state(self.qemu_pid, stopped=True, timeout=10)
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"pool-hang-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _client(self) -> None:
        try:
            conn = libvirt.open(self.daemon.uri_qemu)
        except libvirt.libvirtError:
            return
        try:
            dom = conn.lookupByName(self.guest)
            while not self._stop.is_set():
                try:
                    dom.memoryStats()
                except libvirt.libvirtError:
                    pass  # "cannot acquire state change lock" after 30 s: call again, as a retrying client does
                self.calls_total += 1
        finally:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self.qemu_pid:
            try:
                os.kill(self.qemu_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        for thread in self._threads:
            thread.join(60)
