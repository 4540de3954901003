"""Faults staged the way production has them, for tests and benchmarks (shared/notes/libvirt.md).

`PoolHang` is the real production hang: one guest's QEMU process stopped and many clients, each on its own
connection, calling memoryStats on it in a loop. The first caller takes the guest's job and blocks on its
monitor; the others wait 30 s each for the job lock, holding every worker of a daemon with max_workers = 10,
so calls of anyone else wait in the queue while the daemon process runs (state S). The clients run in a
process of their own named `memstat-poller` (as a monitoring poller of some other team would), so the
daemon's client list shows who holds its connections.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from libvirtd import PrivateLibvirtd, wait_state

POOL_HANG_CLIENTS = 14
POLLER_NAME = "memstat-poller"

# The poller: names itself, opens one connection per thread, says "ready", calls until SIGTERM, then prints
# how many calls were made and exits at once (its connections close with it).
_POLLER = r"""
import ctypes, os, signal, sys, threading
import libvirt
ctypes.CDLL(None).prctl(15, sys.argv[4].encode(), 0, 0, 0)  # PR_SET_NAME: the process's comm
libvirt.registerErrorHandler(lambda *_: None, None)
uri, guest, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = [0]
opened = threading.Barrier(clients + 1)
def client():
    conn = libvirt.open(uri)
    dom = conn.lookupByName(guest)
    opened.wait()
    while True:
        try:
            dom.memoryStats()
        except libvirt.libvirtError:
            pass  # "cannot acquire state change lock" after 30 s: call again, as a retrying client does
        calls[0] += 1
for _ in range(clients):
    threading.Thread(target=client, daemon=True).start()
opened.wait()
print("ready", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (print(calls[0], flush=True), os._exit(0)))
signal.pause()
"""


class PoolHang:
    """Stop `guest`'s QEMU and keep `clients` connections (in a process named memstat-poller) calling
    memoryStats on it; undo on exit."""

    def __init__(self, daemon: PrivateLibvirtd, guest: str, clients: int = POOL_HANG_CLIENTS):
        self.daemon = daemon
        self.guest = guest
        self.clients = clients
        self.qemu_pid: int | None = None
        self.calls_total = 0
        self.poller: subprocess.Popen | None = None

    def __enter__(self) -> "PoolHang":
        self.qemu_pid = self.daemon.qemu_pid(self.guest)
        assert self.qemu_pid, f"guest {self.guest!r} has no QEMU process"
        os.kill(self.qemu_pid, signal.SIGSTOP)
        wait_state(self.qemu_pid, stopped=True, timeout=10)
        self.poller = subprocess.Popen([sys.executable, "-c", _POLLER, self.daemon.uri_qemu, self.guest,
                                        str(self.clients), POLLER_NAME], stdout=subprocess.PIPE, text=True)
        ready = self.poller.stdout.readline().strip()
        assert ready == "ready", f"the poller did not connect: {ready!r}"
        return self

    @property
    def poller_pid(self) -> int:
        """The pid of the process holding the clients' connections."""
        assert self.poller is not None
        return self.poller.pid

    def __exit__(self, *exc_info) -> None:
        if self.qemu_pid:
            try:
                os.kill(self.qemu_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if self.poller is not None:
            self.poller.terminate()
            try:
                out, _ = self.poller.communicate(timeout=30)
                self.calls_total = int(out.strip() or 0)
            except subprocess.TimeoutExpired:
                self.poller.kill()
                self.poller.communicate()
