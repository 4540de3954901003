"""The known libvirtd failure signatures, as data: one table, matched in order, with its libvirt sources.

Every signature becomes the event kind `log_<name>` (tsdb.schema EVENT_KINDS `log_error`). The daemon-log
reader (collector.daemon_log) decides which lines to look at (error and warning); this module only answers
"which known failure does this message text show?".

Matching order (`classify`), first match wins:

1. `IGNORED`: messages known to be harmless (for example the dmidecode /dev/mem error every start of the daemon
   in a VM prints). They never classify, even when they contain a signature's words ("Unable to read from
   '.../cgroup.threads'" is not a monitor error).
2. `SIGNATURES`, in table order, which is chosen so that:
   - client disconnect noise (`client_eof`) comes first: its text ("Input/output error") would otherwise be
     taken for a disk I/O error;
   - host-wide resource exhaustion (`too_many_files`, `out_of_memory`, `no_space`) comes before the symptoms it
     causes: "qemu unexpectedly closed the monitor: ... Cannot allocate memory" is `out_of_memory`;
   - daemon and guest failures follow;
   - `io_error` is last: it is the catch-all for storage I/O errors, so a monitor or client message that
     happens to end in "Input/output error" keeps its more specific signature.

The messages were checked against the strings in Debian bookworm's libvirt 9.0 binaries and against a real
libvirtd 9.0 log (tests/collector/fixtures/logs/real-session.log); `source` names the libvirt file that
reports each one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Signature:
    """A known failure: a pattern over a log message, how bad it is, and where libvirt reports it."""

    name: str
    pattern: re.Pattern[str]
    severity: str
    description: str
    source: str
    domain_pattern: re.Pattern[str] | None = None  # a group named "domain" picks the domain out of the message

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"signature {self.name}: severity {self.severity!r} is not one of {SEVERITIES}")
        if self.domain_pattern is not None and "domain" not in self.domain_pattern.groupindex:
            raise ValueError(f"signature {self.name}: domain_pattern has no group named 'domain'")

    @property
    def event_kind(self) -> str:
        """Return the event kind this signature is reported as (`log_<name>`)."""
        return f"log_{self.name}"

    def domain(self, message: str) -> str | None:
        """Return the domain named in `message`, when this signature's messages name one."""
        if self.domain_pattern is None:
            return None
        found = self.domain_pattern.search(message)
        return found.group("domain") if found else None


@dataclass(frozen=True)
class Ignored:
    """A message that looks like a failure but is known to be harmless, with the reason."""

    name: str
    pattern: re.Pattern[str]
    reason: str
    source: str


@dataclass(frozen=True)
class SignatureMatch:
    """The signature a message matched, and the domain it names (None when it names none)."""

    signature: Signature
    domain: str | None


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_VM_NAME = _re(r"\(vm='(?P<domain>[^']*)'\)")  # "End of file from qemu monitor (vm='name')", libvirt >= 8

SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "client_eof",
        _re(r"End of file while reading data|Cannot recv data|Cannot write data: (?:Broken pipe|Connection reset)"),
        "info",
        "a client connection ended without a clean close (the client exited or was killed); printed for every "
        "client that exits without closing, so not a failure by itself",
        "src/rpc/virnetsocket.c",
    ),
    Signature(
        "too_many_files",
        _re(r"Too many open files"),
        "critical",
        "the daemon reached its open file limit (EMFILE): it can no longer accept clients, open monitors or "
        "start guests; compare libvirtd open_fds with max_fds",
        "errno EMFILE reported through virReportSystemError (src/rpc/virnetsocket.c accept, "
        "src/util/vircommand.c pipe)",
    ),
    Signature(
        "out_of_memory",
        _re(r"cannot allocate memory|\bout of memory\b", re.IGNORECASE),
        "critical",
        "an allocation or fork failed for lack of memory (ENOMEM), in the daemon or in a QEMU it started",
        "errno ENOMEM reported through virReportSystemError (src/util/vircommand.c fork, QEMU's own error "
        "relayed by src/qemu/qemu_process.c)",
    ),
    Signature(
        "no_space",
        _re(r"No space left on device"),
        "warning",
        "a write failed because a filesystem is full (ENOSPC): domain status files, saves, snapshots or logs",
        "errno ENOSPC reported through virReportSystemError (src/util/virfile.c)",
    ),
    Signature(
        "too_many_clients",
        _re(r"Too many active clients \(\d+\), dropping connection from|Temporarily suspending services"),
        "critical",
        "the server reached max_clients (or max_anonymous_clients): new connections are refused (older "
        "libvirt) or wait in the listen backlog until a client leaves (libvirt 9.0 logs this at info level "
        "only: read clients and clients_max from the admin API as well)",
        "src/rpc/virnetserver.c (virNetServerAddClient; virNetServerCheckLimits in newer releases)",
    ),
    Signature(
        "lock_timeout",
        _re(r"cannot acquire state change lock"),
        "warning",
        "a call gave up waiting for a domain's job lock (held by a call that is stuck, typically on a QEMU "
        "monitor that does not answer): the domain is wedged; also the max_queued limit variant",
        "src/conf/virdomainjob.c (virDomainObjBeginJobInternal)",
    ),
    Signature(
        "job_wait",
        _re(r"Cannot start job \(.*\) (?:in API \S+ )?for domain .*; current job is"),
        "info",
        "the warning printed together with lock_timeout: names the domain and the call that holds its job lock",
        "src/conf/virdomainjob.c (virDomainObjBeginJobInternal)",
        _re(r"for domain (?P<domain>.*?); current job is"),
    ),
    Signature(
        "keepalive_timeout",
        _re(r"connection closed due to keepalive timeout"),
        "warning",
        "a peer stopped answering keepalive probes for interval*(count+1) seconds and its connection was "
        "closed; in the daemon's own log the peer is a client that hung or was stopped",
        "src/rpc/virkeepalive.c (virKeepAliveTimerInternal)",
    ),
    Signature(
        "process_unkillable",
        _re(r"Failed to terminate process \d+ with SIG(?:TERM|KILL)"),
        "critical",
        "a QEMU (or helper) process survived SIGKILL: it is stuck in the kernel (D state, for example on a "
        "hung NFS mount or a device), and its guest can be neither stopped nor started",
        "src/util/virprocess.c (virProcessKillPainfullyDelay)",
    ),
    Signature(
        "monitor_error",
        _re(r"Unable to (?:read from|write to) monitor|qemu unexpectedly closed the monitor"
            r"|End of file from qemu monitor|monitor socket did not show up|failed to connect to monitor socket",
            re.IGNORECASE),
        "warning",
        "the daemon lost (or never got) its QEMU monitor connection: QEMU died, failed to start or stopped "
        "answering; the message carries QEMU's own last words when it has them",
        "src/qemu/qemu_monitor.c (qemuMonitorIORead/IOWrite, qemuMonitorOpenUnix), src/qemu/qemu_process.c "
        "(qemuProcessReportLogError)",
        _VM_NAME,
    ),
    Signature(
        "agent_unresponsive",
        _re(r"Guest agent is not responding"),
        "info",
        "a call needed the QEMU guest agent and it did not answer (not installed, not started, or the guest is "
        "busy); a guest-side matter",
        "src/util/virerror.c (VIR_ERR_AGENT_UNRESPONSIVE), src/qemu/qemu_agent.c",
    ),
    Signature(
        "autostart_failed",
        _re(r"Failed to autostart VM '.*'"),
        "warning",
        "a guest marked autostart did not start when the daemon started",
        "src/qemu/qemu_driver.c (qemuAutostartDomain)",
        _re(r"Failed to autostart VM '(?P<domain>.*?)':"),
    ),
    Signature(
        "virtlogd_unreachable",
        _re(r"Failed to connect socket to '[^']*virtlogd-sock'"),
        "warning",
        "virtlogd, which holds QEMU's log files, cannot be reached: guests cannot start",
        "src/rpc/virnetsocket.c (virNetSocketNewConnectUNIX), src/logging/log_manager.c",
    ),
    Signature(
        "io_error",
        _re(r"\bI/O error\b|Input/output error"),
        "warning",
        "a storage read or write failed (EIO or a reported I/O error), for example on a guest's disk image",
        "errno EIO reported through virReportSystemError (src/util/virfile.c, src/storage/*)",
    ),
)

IGNORED: tuple[Ignored, ...] = (
    Ignored(
        "dmidecode_dev_mem",
        _re(r"dmidecode .*/dev/mem"),
        "every daemon start in a VM or container without SMBIOS access: dmidecode cannot read /dev/mem",
        "src/util/virsysinfo.c via src/util/vircommand.c (virCommandWait)",
    ),
    Ignored(
        "cgroup_threads_missing",
        _re(r"cgroup\.threads'?: No such file or directory"),
        "cgroup v1 controllers have no cgroup.threads; printed when a restarted daemon re-attaches a running guest",
        "src/util/vircgroup.c (virCgroupGetValueRaw), src/util/virfile.c (virFileReadAll)",
    ),
    Ignored(
        "process_stat_gone",
        _re(r"cannot parse process status data"),
        "reading /proc/<pid>/stat of a QEMU that has just exited; follows a guest's death, which is reported "
        "by lifecycle events",
        "src/util/virprocess.c (virProcessGetStatInfo)",
    ),
    Ignored(
        "xattr_timestamp",
        _re(r"Invalid XATTR timestamp detected"),
        "image labels remembered from before the host's last boot; the security driver relabels",
        "src/security/security_util.c (virSecurityValidateTimestamp)",
    ),
)

_BY_NAME = {signature.name: signature for signature in SIGNATURES}


def ignored(message: str) -> Ignored | None:
    """Return the harmless-message entry `message` matches, or None."""
    for entry in IGNORED:
        if entry.pattern.search(message):
            return entry
    return None


def classify(message: str) -> Signature | None:
    """Return the first signature (in table order) that `message` shows, or None (also for ignored messages)."""
    if ignored(message) is not None:
        return None
    for signature in SIGNATURES:
        if signature.pattern.search(message):
            return signature
    return None


def match(message: str) -> SignatureMatch | None:
    """Classify `message` and pick out the domain it names, when its signature's messages name one."""
    signature = classify(message)
    if signature is None:
        return None
    return SignatureMatch(signature, signature.domain(message))


def by_name(name: str) -> Signature:
    """Return the signature called `name` (KeyError when there is none)."""
    return _BY_NAME[name]
