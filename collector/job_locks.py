"""Who holds a guest's job lock, read from libvirtd's log: a pure parser of the two messages and a pairer.

When a call waits 30 s for a guest's job lock and gives up, libvirt (src/conf/virdomainjob.c,
virDomainObjBeginJobInternal; libvirt 9.0) logs two records from the waiting worker thread, in this order:

    warning : Cannot start job (query, none, none) in API remoteDispatchDomainGetXMLDesc for domain win10;
              current job is (async nested, none, snapshot) owned by (66684 remoteDispatchDomainSnapshotCreateXML,
              0 <null>, 66684 remoteDispatchDomainSnapshotCreateXML (flags=0x0)) for (30s, 0s, 30s)
    error   : Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatch...)

(one line each). The job triples are (monitor job, agent job, async job); the owners are "thread id API" of
each, `0 <null>` when none holds it; the ages are whole seconds each has been held. The error names no domain:
the warning before it from the SAME thread does (the thread ids are kernel tids, as /proc/<pid>/task lists them,
so `holder_thread` can be looked up there). The error's other spellings: `(held by agent=X)`,
`(held by monitor=X agent=Y)`, plain `cannot acquire state change lock`, and the same with `due to max_queued
limit` ("operation failed: ..." when max_queued in qemu.conf is exceeded; the warning comes first there too).

Measured with a real libvirtd 9.0 and tests/faults.PoolHang (tests/collector/fixtures/logs/job-lock-pool-hang.log):
every 30 s each of the nine waiting workers logs the pair, all within 3 ms, naming the same holder thread with
ages 30 s, then 60 s; the pair of one thread is adjacent there, but pairs of different threads may interleave.

Older releases word the warning differently, and all are understood:
- libvirt 5.x-8.0 (src/qemu/qemu_domain.c, then src/qemu/qemu_domainjob.c): no `in API X`;
- libvirt 1.3-4.x: two jobs (monitor, async), owners `(TID API, TID API)`, ages `for (Ns, Ns)`, and the error
  says `(held by X)`;
- libvirt 1.2 and older: owners are bare thread ids `(TID, TID)` and there are no ages.

Domain names are arbitrary text (spaces, quotes, `;`, parentheses, even `; current job is (`). The libvirt
wording around the name is fixed and what follows it is libvirt's own vocabulary, so a message is split at
its LAST `; current job is (` and the tail must match the fixed form exactly.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Callable

from collector.daemon_log import LogRecord

JOB_WAIT_SECONDS = 30  # VIR_JOB_WAIT_TIME, src/conf/virdomainjob.c: a call gives up on the job lock after this
NONE_JOB = "none"
NULL_API = "<null>"  # NULLSTR() in libvirt's src/internal.h
PAIRING_WINDOW_NS = 5 * 10**9  # the two records are written microseconds apart by the same function call
MAX_PENDING = 4096  # job-wait lines waiting for their thread's lock timeout; more means they never came

_SPLIT = "; current job is ("
_HEAD = re.compile(r"Cannot start job \((?P<waiting_job>[^()]*)\)(?: in API (?P<waiting_api>\S+))? for domain ")
_TAIL = re.compile(
    r"(?P<job>[^()]*)\) owned by \((?P<owners>[^()]*?(?: \(flags=0x[0-9a-fA-F]+\))?)\)"
    r"(?: for \((?P<ages>\d+s(?:, \d+s)*)\))?"
)
_OWNER = re.compile(r"(?P<tid>\d+)(?: (?P<api>\S+))?")
_FLAGS = re.compile(r" \(flags=0x[0-9a-fA-F]+\)$")
_LOCK_TIMEOUT = re.compile(  # VIR_ERR_OPERATION_TIMEOUT's and VIR_ERR_OPERATION_FAILED's prefixes (virerror.c)
    r"(?:Timed out during operation: |operation failed: )?"
    r"cannot acquire state change lock(?: \(held by (?P<held>[^()]*)\))?(?: due to max_queued limit)?"
)


@dataclass(frozen=True)
class JobHolder:
    """Who holds a guest's job lock (as a waiting call saw it), and which call waited for it."""

    domain: str
    waiting_api: str | None
    waiting_job: str | None
    holder_api: str | None  # the monitor job's API (async job's when only it blocks; agent's when only it holds)
    holder_thread: int | None  # libvirtd's thread (kernel tid) running holder_api
    agent_api: str | None  # the API holding the guest agent job, when one does
    held_by_agent: bool
    job: str  # the current job as libvirt prints it: "monitor job, agent job, async job"
    age_seconds: float | None  # how long the holder's job had been held when the waiter gave up
    time_ns: int = 0  # the log record's time

    def describe(self) -> str:
        """Return one line for a human: the guest, the job, who holds it since when, and who waits."""
        held = f"held {self.age_seconds:g} s" if self.age_seconds is not None else "held"
        monitor = _by_thread(self.holder_thread, self.holder_api)
        if self.held_by_agent and (self.holder_api is None or self.holder_api == self.agent_api):
            who = "by the guest agent" + (f" ({monitor[3:]})" if monitor else "")
        elif self.held_by_agent:
            agent = f" (in {self.agent_api})" if self.agent_api else ""
            who = f"{monitor or 'by an unknown thread'} and by the guest agent{agent}"
        else:
            who = monitor or "by an unknown thread"
        waits = f"; {self.waiting_api} waits" if self.waiting_api else ""
        return f"guest '{self.domain}': job ({self.job}) {held} {who}{waits}"


def _by_thread(thread: int | None, api: str | None) -> str:
    """Return 'by thread 42 in X' with what is known ('' when nothing is)."""
    parts = []
    if thread is not None:
        parts.append(f"thread {thread}")
    if api is not None:
        parts.append(f"in {api}")
    return "by " + " ".join(parts) if parts else ""


def _api(text: str | None) -> str | None:
    return None if text is None or text == NULL_API else text


def parse_job_wait(message: str, time_ns: int = 0) -> JobHolder | None:
    """Return the holder a `Cannot start job ... current job is ... owned by ...` warning names, or None."""
    head = _HEAD.match(message)
    if head is None:
        return None
    cut = message.rfind(_SPLIT)
    if cut < head.end():
        return None
    domain = message[head.end():cut]
    tail = _TAIL.fullmatch(message, cut + len(_SPLIT))
    if tail is None:
        return None
    jobs = [part.strip() for part in tail["job"].split(",")]
    owners = _owners(tail["owners"], len(jobs))
    if owners is None:
        return None
    ages = [float(age) for age in re.findall(r"\d+", tail["ages"])] if tail["ages"] else []
    if ages and len(ages) != len(jobs):
        return None
    if len(jobs) == 3:  # (monitor, agent, async)
        roles = {"monitor": 0, "agent": 1, "async": 2}
    elif len(jobs) == 2:  # libvirt < 5: (monitor, async)
        roles = {"monitor": 0, "async": 1}
    else:
        return None
    agent_index = roles.get("agent")
    agent_tid, agent_api = owners[agent_index] if agent_index is not None else (0, None)
    held_by_agent = agent_index is not None and (jobs[agent_index] != NONE_JOB or agent_tid != 0)
    # The holder, as libvirt picks its "blocker": the monitor job's owner, else the async job's; the agent's
    # only when it alone holds the guest.
    holder = None
    for role in ("monitor", "async", "agent"):
        index = roles.get(role)
        if index is not None and (jobs[index] != NONE_JOB or owners[index][0] != 0):
            holder = index
            break
    holder_tid, holder_api = owners[holder] if holder is not None else (None, None)
    return JobHolder(
        domain=domain,
        waiting_api=_api(head["waiting_api"]),
        waiting_job=head["waiting_job"],
        holder_api=holder_api,
        holder_thread=holder_tid or None,
        agent_api=agent_api if held_by_agent else None,
        held_by_agent=held_by_agent,
        job=", ".join(jobs),
        age_seconds=ages[holder] if ages and holder is not None else None,
        time_ns=time_ns,
    )


def _owners(text: str, count: int) -> list[tuple[int, str | None]] | None:
    """Return [(thread id, API)] from `66684 remoteDispatchX, 0 <null>, ... (flags=0x0)`, or None."""
    parts = _FLAGS.sub("", text).split(", ")
    if len(parts) != count:
        return None
    owners = []
    for part in parts:
        found = _OWNER.fullmatch(part)
        if found is None:
            return None
        owners.append((int(found["tid"]), _api(found["api"])))
    return owners


def parse_lock_timeout(message: str) -> tuple[str | None, str | None] | None:
    """Return (monitor API, agent API) a `cannot acquire state change lock` error names, or None for others.

    Both are None for the plain message; the old `(held by X)` names the monitor job's holder.
    """
    found = _LOCK_TIMEOUT.fullmatch(message.strip())
    if found is None:
        return None
    held = found["held"]
    if held is None:
        return None, None
    monitor = agent = None
    for word in held.split():
        key, equals, value = word.partition("=")
        if not equals:
            monitor = word  # libvirt < 5: "(held by remoteDispatchX)"
        elif key == "monitor":
            monitor = value
        elif key == "agent":
            agent = value
    return _api(monitor), _api(agent)


def _with_timeout(holder: JobHolder, monitor_api: str | None, agent_api: str | None) -> JobHolder:
    """Return `holder` completed by what its lock-timeout error says (that is libvirt's own "blocker")."""
    changes: dict = {}
    if monitor_api is not None and monitor_api != holder.holder_api:
        changes.update(holder_api=monitor_api, holder_thread=None)
    if agent_api is not None:
        changes.update(agent_api=agent_api, held_by_agent=True)
        if holder.holder_api is None and monitor_api is None:
            changes["holder_api"] = agent_api
    return replace(holder, **changes) if changes else holder


class JobLocks:
    """Keeps the newest job holder of each guest, from every libvirtd log record it is fed.

    A job-wait warning is a holder at once (it names everything); the lock-timeout error that follows from the
    same thread completes it with libvirt's own verdict (`held by monitor=... agent=...`). Nothing is logged when
    a job ends, so a holder is kept for `keep_seconds` after its last sighting: during a hang every waiter
    logs again every 30 s (JOB_WAIT_SECONDS), which keeps it fresh.
    """

    def __init__(self, keep_seconds: float = 120.0, clock: Callable[[], float] = time.time):
        self.keep_seconds = keep_seconds
        self.clock = clock
        self._holders: dict[str, JobHolder] = {}
        self._pending: dict[int, JobHolder] = {}  # thread id -> its last job-wait, until its lock timeout
        self.unpaired_timeouts_total = 0  # lock timeouts with no job-wait line before them (warnings not logged)

    def observe(self, record: LogRecord) -> JobHolder | None:
        """Feed one log record; return the holder it reports or completes (None for every other record)."""
        holder = parse_job_wait(record.message, record.time_ns)
        if holder is not None:
            self._pending.pop(record.thread_id, None)
            if len(self._pending) >= MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
            self._pending[record.thread_id] = holder
            return self._keep(holder)
        timeout = parse_lock_timeout(record.message)
        if timeout is None:
            return None
        waited = self._pending.pop(record.thread_id, None)
        if waited is None or record.time_ns - waited.time_ns > PAIRING_WINDOW_NS:
            self.unpaired_timeouts_total += 1
            return None
        return self._keep(_with_timeout(waited, *timeout))

    def _keep(self, holder: JobHolder) -> JobHolder:
        known = self._holders.get(holder.domain)
        if known is None or holder.time_ns >= known.time_ns:
            self._holders[holder.domain] = holder
        return holder

    def holders(self, now: float | None = None) -> list[JobHolder]:
        """Return the newest holder of each guest seen in the last keep_seconds, newest first."""
        now = self.clock() if now is None else now
        oldest_ns = (now - self.keep_seconds) * 1e9
        for domain in [name for name, held in self._holders.items() if held.time_ns < oldest_ns]:
            del self._holders[domain]
        for thread in [tid for tid, held in self._pending.items() if held.time_ns < oldest_ns]:
            del self._pending[thread]
        return sorted(self._holders.values(), key=lambda held: held.time_ns, reverse=True)

    def forget(self, domain: str) -> None:
        """Drop what is known about `domain` (it was undefined, or its job is known to have ended)."""
        self._holders.pop(domain, None)
        for thread in [tid for tid, held in self._pending.items() if held.domain == domain]:
            del self._pending[thread]
