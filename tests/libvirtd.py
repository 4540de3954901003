"""A private libvirtd for tests: its own mount namespace, config, sockets and state, all in one temp dir.

How it runs (measured in shared/notes/libvirt.md): `unshare -m --propagation private` runs a small shell script
that mounts a tmpfs on /run, bind-mounts temp dirs onto /etc/libvirt, /run/libvirt, /var/lib/libvirt,
/var/log/libvirt and /var/cache/libvirt, starts `virtlogd -d`, then execs `libvirtd` in the foreground with only
the QEMU driver module loadable (the test driver is built in). Only the mount namespace is private: every pid
here is a host pid. The host's own libvirt (if any) is never touched: its paths are hidden behind the mounts.

Guests made by `define_guest` go into a cgroup partition of their own (/machine/virtwatch<token>), so that
daemons of tests running in parallel never share a machine cgroup (libvirt names them qemu-<id>-<name>, and
every fresh daemon starts counting ids at 1); `stop()` removes that partition.

Measured here: start ~0.1 s; the first QEMU guest of a fresh daemon ~8.5 s (QEMU capabilities probe of
qemu-system-x86_64 and -i386; pass `capabilities_cache` to do it once per session), later guests ~0.5 s.
`define_guest` forces the whole probe (`getCapabilities`): otherwise the first cpu stats call after the first
guest stalls ~3.6 s probing qemu-system-i386, which would look like a hung daemon to a test. A destroy takes
~2 s although QEMU exits in ~20 ms: the sandbox's pid 1 is not systemd and reaps the orphaned QEMU zombie late,
and libvirt waits until the pid is gone. So `stop()` destroys all guests in parallel.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import libvirt

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
DESTROY_TIMEOUT_SECONDS = 30.0
GUEST_MEMORY_MIB = 64
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the NUL
DRIVER_DIRS = ("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver", "/usr/lib64/libvirt/connection-driver",
               "/usr/lib/libvirt/connection-driver")
CGROUP_ROOT = Path("/sys/fs/cgroup")

# Sub-directories of the temp dir, and where the namespace script mounts them.
BIND_MOUNTS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
               "log": "/var/log/libvirt", "cache": "/var/cache/libvirt"}

NAMESPACE_SCRIPT = r"""
set -eu
tmp="$1"; start_virtlogd="$2"
mount -t tmpfs -o mode=0755 virtwatch-run /run
mkdir -p /run/libvirt /run/lock
mount --bind "$tmp/etc" /etc/libvirt
mount --bind "$tmp/run" /run/libvirt
mount --bind "$tmp/lib" /var/lib/libvirt
mount --bind "$tmp/log" /var/log/libvirt
mount --bind "$tmp/cache" /var/cache/libvirt
if [ "$start_virtlogd" = yes ]; then
    virtlogd -d -p "$tmp/virtlogd.pid"
fi
export LIBVIRT_DRIVER_DIR="$tmp/drivers"
exec libvirtd -f "$tmp/etc/libvirtd.conf" -p "$tmp/libvirtd.pid"
"""

# QEMU runs as root with no security driver: the temp dir is private (0700) and there is no AppArmor here.
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
"""


class MissingLibvirt(RuntimeError):
    """libvirtd, virtlogd, unshare or the QEMU driver module is not installed."""


# --- processes ---------------------------------------------------------------------------------------------------

def read_pid(path: Path) -> int | None:
    """Return the pid written in a pidfile, or None if it is missing or empty."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def process_state(pid: int) -> str:
    """The one-letter state of a process from /proc/PID/stat (R, S, T for stopped, Z, ...), "" if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def cmdline(pid: int) -> list[str]:
    """Return a process's argv, or [] if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [arg.decode(errors="replace") for arg in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def signal_pid(pid: int | None, sig: int) -> None:
    """Send a signal, ignoring a process that is already gone."""
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(pids, timeout: float) -> bool:
    """Wait until none of the pids is alive; return whether that happened in time."""
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_state(pid: int, stopped: bool, timeout: float) -> None:
    """Wait until a process is stopped (state T), or no longer stopped: a signal takes effect asynchronously."""
    deadline = time.monotonic() + timeout
    while (process_state(pid) == "T") != stopped and pid_alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} is still in state {process_state(pid)!r} after {timeout:.0f} s")
        time.sleep(0.005)


def terminate(pids, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGCONT and SIGTERM the pids, then SIGKILL whatever is still alive after `timeout`."""
    pids = [pid for pid in pids if pid_alive(pid)]
    for pid in pids:
        signal_pid(pid, signal.SIGCONT)
        signal_pid(pid, signal.SIGTERM)
    if not wait_gone(pids, timeout):
        for pid in pids:
            signal_pid(pid, signal.SIGKILL)
        wait_gone(pids, timeout)


def is_qemu(argv: list[str]) -> bool:
    """Whether an argv is a QEMU system emulator's."""
    return bool(argv) and os.path.basename(argv[0]).startswith("qemu-system")


# --- host facts --------------------------------------------------------------------------------------------------

def kvm_available() -> bool:
    """Whether /dev/kvm exists and this process may open it read-write."""
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


def qemu_driver_module() -> Path:
    """Return the path of libvirt's QEMU driver module."""
    for directory in DRIVER_DIRS:
        module = Path(directory) / "libvirt_driver_qemu.so"
        if module.exists():
            return module
    raise MissingLibvirt("libvirt_driver_qemu.so not found (Debian package libvirt-daemon-driver-qemu)")


def cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy's mount point (one dir for cgroup v2, one per v1 controller in hybrid mode)."""
    if (CGROUP_ROOT / "cgroup.procs").exists():
        return [CGROUP_ROOT]
    try:
        return sorted(p for p in CGROUP_ROOT.iterdir() if (p / "cgroup.procs").exists())
    except OSError:
        return []


def make_cgroup(path: Path) -> None:
    """mkdir one cgroup; give a v1 cpuset child its parent's cpus and mems (it starts empty: no task fits)."""
    path.mkdir(exist_ok=True)
    for name in ("cpuset.cpus", "cpuset.mems"):
        child, parent = path / name, path.parent / name
        if child.exists() and parent.exists() and not child.read_text().strip():
            child.write_text(parent.read_text())


def remove_cgroup_tree(path: Path) -> list[Path]:
    """rmdir a cgroup and its sub-cgroups, deepest first; return those still there (a task is inside)."""
    if not path.is_dir():
        return []
    left = []
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [path]:
        try:
            sub.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            left.append(sub)
    return left


# --- guests ------------------------------------------------------------------------------------------------------

def domain_xml(name: str, uuid_: str, domain_type: str, disk: Path | None, partition: str | None) -> str:
    """The XML of a small guest: 64 MiB, 1 vCPU, no network, a balloon with stats, an optional raw disk."""
    resource = f"\n  <resource><partition>{partition}</partition></resource>" if partition else ""
    disk_xml = "" if disk is None else f"""
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file={quoteattr(str(disk))}/>
      <target dev='vda' bus='virtio'/>
    </disk>"""
    return f"""<domain type='{domain_type}'>
  <name>{escape(name)}</name>
  <uuid>{uuid_}</uuid>
  <memory unit='MiB'>{GUEST_MEMORY_MIB}</memory>
  <vcpu>1</vcpu>{resource}
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>{disk_xml}
    <memballoon model='virtio'><stats period='1'/></memballoon>
  </devices>
</domain>"""


class PrivateLibvirtd:
    """A libvirtd (QEMU driver, and the test driver through the daemon) on unix sockets under `tmp`."""

    def __init__(self, tmp: str | Path, capabilities_cache: str | Path | None = None):
        self.tmp = Path(tmp)
        self.capabilities_cache = Path(capabilities_cache) if capabilities_cache else None
        self.sock_dir = self.tmp / "sock"
        self.pidfile = self.tmp / "libvirtd.pid"
        self.virtlogd_pidfile = self.tmp / "virtlogd.pid"
        self.log_path = self.tmp / "libvirtd.log"
        self.stderr_path = self.tmp / "libvirtd.stderr"
        self.uri_test = f"test+unix:///default?socket={self.sock_dir}/libvirt-sock"
        self.uri_qemu = f"qemu+unix:///system?socket={self.sock_dir}/libvirt-sock"
        self.admin_uri = f"libvirtd+unix:///system?socket={self.sock_dir}/libvirt-admin-sock"
        if len(str(self.sock_dir / "libvirt-admin-sock")) > MAX_SOCKET_PATH:
            raise ValueError(f"{self.tmp} is too deep: unix socket paths are limited to {MAX_SOCKET_PATH} bytes")
        self.domain_type = "kvm" if kvm_available() else "qemu"
        self.partition = f"/machine/virtwatch{uuid.uuid4().hex[:12]}"
        self.process: subprocess.Popen | None = None
        self.guests: dict[str, str] = {}  # name -> uuid of every guest define_guest made
        self._probed = False

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> "PrivateLibvirtd":
        """Write the config, start virtlogd and libvirtd, and wait until the daemon answers uri_test."""
        for tool in ("unshare", "libvirtd", "virtlogd"):
            if shutil.which(tool) is None:
                raise MissingLibvirt(f"`{tool}` is not installed (Debian packages libvirt-daemon-system, "
                                     f"util-linux); run `make setup-test`")
        self._prepare_tree()
        self._launch()
        return self

    def restart(self) -> "PrivateLibvirtd":
        """Start libvirtd again on the same sockets and state (SIGTERM first if it still runs); guests stay."""
        self._stop_daemon()
        self._launch()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to libvirtd and wait until it took effect (dead and reaped, stopped, or running again)."""
        pid = self.pid
        signal_pid(pid, sig)
        if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGTERM):
            self._reap(pid, STOP_TIMEOUT_SECONDS)
        elif sig in (signal.SIGSTOP, signal.SIGCONT):
            wait_state(pid, stopped=sig == signal.SIGSTOP, timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Destroy the guests, stop libvirtd and virtlogd, remove our cgroups: no process of ours is left."""
        if self.pid:
            signal_pid(self.pid, signal.SIGCONT)
            self._destroy_guests_via_daemon()
        self._stop_daemon()
        terminate(self.qemu_pids())
        terminate([pid for pid in [self.virtlogd_pid] if pid])
        self._save_capabilities()
        self.remove_cgroups()

    def __enter__(self) -> "PrivateLibvirtd":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- pids --------------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """libvirtd's pid (a host pid), or None when it is not running."""
        pid = read_pid(self.pidfile)
        if pid_alive(pid) and str(self.pidfile) in cmdline(pid):
            return pid
        if self.process is not None and self.process.poll() is None:
            return self.process.pid  # starting: unshare and sh exec into libvirtd under this same pid
        return None

    @property
    def virtlogd_pid(self) -> int | None:
        """virtlogd's pid if our virtlogd (its command line names our pidfile) is alive."""
        pid = read_pid(self.virtlogd_pidfile)
        return pid if pid_alive(pid) and str(self.virtlogd_pidfile) in cmdline(pid) else None

    def qemu_pid(self, name: str) -> int | None:
        """The pid of guest `name`'s QEMU process, or None if it does not run."""
        pid = read_pid(self.tmp / "run" / "qemu" / f"{name}.pid")
        if pid_alive(pid) and self._runs_guest(pid, name):
            return pid
        return self._find_qemu_by_uuid(self.guests.get(name))

    def qemu_pids(self) -> list[int]:
        """Pids of every live QEMU process of this daemon's guests (define_guest's or any other)."""
        names = set(self.guests)
        names.update(p.name[:-len(".pid")] for p in (self.tmp / "run" / "qemu").glob("*.pid"))
        return sorted(pid for pid in map(self.qemu_pid, names) if pid)

    def _runs_guest(self, pid: int, name: str) -> bool:
        """Whether pid is QEMU running guest `name` (by its uuid if define_guest made it, else by -name)."""
        argv = cmdline(pid)
        if not is_qemu(argv):
            return False
        if name in self.guests:
            return self.guests[name] in argv
        return any(arg.startswith(f"guest={name.replace(',', ',,')},") for arg in argv)

    def _find_qemu_by_uuid(self, uuid_: str | None) -> int | None:
        """Find a QEMU process by the `-uuid` on its command line."""
        if uuid_ is None:
            return None
        for entry in glob.glob("/proc/[0-9]*/cmdline"):
            pid = int(entry.split("/")[2])
            argv = cmdline(pid)
            if is_qemu(argv) and uuid_ in argv and pid_alive(pid):
                return pid
        return None

    # --- guests ------------------------------------------------------------------------------------------------

    def define_guest(self, name: str, start: bool = True, disk_mib: int = 1) -> str:
        """Define (and start) a 64 MiB, 1 vCPU guest with a `disk_mib` MiB raw disk (0: none); return its name."""
        disk = self._make_disk(disk_mib) if disk_mib else None
        uuid_ = str(uuid.uuid4())
        partition = self.partition if self._make_partition() else None
        self.guests[name] = uuid_
        conn = libvirt.open(self.uri_qemu)
        try:
            if not self._probed:
                conn.getCapabilities()  # probes every QEMU binary now, not in some later stats call
                self._probed = True
            dom = conn.defineXML(domain_xml(name, uuid_, self.domain_type, disk, partition))
            if start:
                dom.create()
        finally:
            conn.close()
        return name

    def _make_disk(self, mib: int) -> Path:
        """Create a sparse raw disk image of `mib` MiB in the temp dir."""
        disk = self.tmp / "disks" / f"{uuid.uuid4().hex}.img"
        disk.parent.mkdir(exist_ok=True)
        with open(disk, "wb") as f:
            f.truncate(mib * 1024 * 1024)
        return disk

    def _destroy_guests_via_daemon(self) -> None:
        """Destroy every running QEMU domain through the daemon, all at once, giving up after a deadline."""
        if not self.qemu_pids():
            return  # nothing runs: skip the QEMU connection (slow on a fresh daemon)
        worker = threading.Thread(target=_quietly, args=(self._destroy_all,), daemon=True)
        worker.start()
        worker.join(DESTROY_TIMEOUT_SECONDS)  # a wedged daemon: give up, stop() kills QEMU itself

    def _destroy_all(self) -> None:
        """Destroy the active domains in parallel (each takes ~2 s in this sandbox: see the module docstring)."""
        conn = libvirt.open(self.uri_qemu)
        try:
            threads = [threading.Thread(target=_quietly, args=(dom.destroy,), daemon=True)
                       for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(DESTROY_TIMEOUT_SECONDS)
        finally:
            conn.close()

    # --- starting and stopping libvirtd ------------------------------------------------------------------------

    def _prepare_tree(self) -> None:
        """Create the temp dirs, the driver dir holding only the QEMU module, and the config files."""
        for sub in (*BIND_MOUNTS, "sock", "drivers"):
            (self.tmp / sub).mkdir(parents=True, exist_ok=True)
        link = self.tmp / "drivers" / "libvirt_driver_qemu.so"
        if not link.is_symlink():
            link.symlink_to(qemu_driver_module())
        (self.tmp / "etc" / "libvirtd.conf").write_text(self._libvirtd_conf())
        (self.tmp / "etc" / "qemu.conf").write_text(QEMU_CONF)
        self._load_capabilities()

    def _libvirtd_conf(self) -> str:
        """libvirtd.conf: unix sockets only, no auth, a small worker pool, warnings and errors to log_path."""
        return f"""\
listen_tls = 0
listen_tcp = 0
unix_sock_dir = "{self.sock_dir}"
auth_unix_ro = "none"
auth_unix_rw = "none"
max_workers = 10
min_workers = 2
prio_workers = 2
keepalive_interval = 5
keepalive_count = 5
log_level = 3
log_filters = "3:*"
log_outputs = "3:file:{self.log_path}"
"""

    def _launch(self) -> None:
        """Run the namespace script (it starts virtlogd unless ours still runs) and wait for the daemon."""
        start_virtlogd = "no" if self.virtlogd_pid else "yes"
        self.pidfile.unlink(missing_ok=True)
        with open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "virtwatch-libvirtd",
                 str(self.tmp), start_virtlogd],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=self.tmp)
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Wait until libvirt.open(uri_test) succeeds; on failure stop everything and raise with the logs."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(f"libvirtd exited with status {code} while starting\n{self.log_tail()}")
            if read_pid(self.pidfile) and self._socket_accepts() and _quietly(self._open_test):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"libvirtd did not answer on {self.uri_test} within {START_TIMEOUT_SECONDS:.0f} s\n"
                           f"{self.log_tail()}")

    def _socket_accepts(self) -> bool:
        """Whether the read-write socket accepts a connection (checked without libvirt's error noise)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(self.sock_dir / "libvirt-sock"))
                return True
            except OSError:
                return False

    def _open_test(self) -> bool:
        """Open and close a test-driver connection through the daemon."""
        libvirt.open(self.uri_test).close()
        return True

    def _stop_daemon(self) -> None:
        """SIGCONT + SIGTERM libvirtd (SIGKILL after a deadline) and reap it; QEMU guests keep running."""
        pid = self.pid
        if pid:
            signal_pid(pid, signal.SIGCONT)
            signal_pid(pid, signal.SIGTERM)
        self._reap(pid, STOP_TIMEOUT_SECONDS)

    def _reap(self, pid: int | None, timeout: float) -> None:
        """Wait for libvirtd to exit (SIGKILL after `timeout`) and collect our child's exit status."""
        if pid and not wait_gone([pid], timeout):
            signal_pid(pid, signal.SIGKILL)
            wait_gone([pid], timeout)
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of libvirtd's log file and of its stderr."""
        parts = []
        for path in (self.log_path, self.stderr_path):
            try:
                text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            except FileNotFoundError:
                text = "(missing)"
            parts.append(f"--- {path}:\n{text}")
        return "\n".join(parts)

    # --- cgroups -----------------------------------------------------------------------------------------------

    def cgroup_dirs(self) -> list[Path]:
        """Our partition's dir in every cgroup hierarchy (libvirt appends .partition to the name)."""
        leaf = self.partition.rsplit("/", 1)[1] + ".partition"
        return [mount / "machine" / leaf for mount in cgroup_mounts()]

    def _make_partition(self) -> bool:
        """Create our cgroup partition (libvirt creates only /machine itself); False if cgroups are unusable."""
        dirs = self.cgroup_dirs()
        try:
            for path in dirs:
                make_cgroup(path.parent)
                make_cgroup(path)
        except OSError:
            return False
        return bool(dirs)

    def remove_cgroups(self) -> list[Path]:
        """Remove our cgroup partition and any machine cgroup left in it; return dirs still busy."""
        left = []
        for path in self.cgroup_dirs():
            left += remove_cgroup_tree(path)
        return left

    # --- capabilities cache: QEMU's ~8 s probe is done once per cache dir, not once per daemon -----------------

    def _load_capabilities(self) -> None:
        """Copy a warm QEMU capabilities cache into this daemon's cache dir, if one was given."""
        if self.capabilities_cache and self.capabilities_cache.is_dir():
            target = self.tmp / "cache" / "qemu" / "capabilities"
            target.mkdir(parents=True, exist_ok=True)
            for xml in self.capabilities_cache.glob("*.xml"):
                shutil.copy2(xml, target / xml.name)

    def _save_capabilities(self) -> None:
        """Keep this daemon's QEMU capabilities cache for the next daemon, if a cache dir was given."""
        if self.capabilities_cache is None:
            return
        self.capabilities_cache.mkdir(parents=True, exist_ok=True)
        for xml in (self.tmp / "cache" / "qemu" / "capabilities").glob("*.xml"):
            partial = self.capabilities_cache / f".{xml.name}.{os.getpid()}"
            shutil.copy2(xml, partial)
            os.replace(partial, self.capabilities_cache / xml.name)


def _quietly(func):
    """Run func; return False instead of raising a libvirt error."""
    try:
        return func()
    except libvirt.libvirtError:
        return False
