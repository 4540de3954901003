"""Why libvirtd is failing, in one sentence and in fields, from evidence read without the daemon's help (pure).

The evidence (`Evidence`) is what the agent's sources last saw: the daemon's process and threads (/proc), the
admin API's worker pool and client list (a helper process; a stopped daemon does not answer it, so the last
reading before the hang is used and its age said), the job-lock holders its log names, and the guests whose
QEMU process is stopped or in D state. `diagnose` turns it into a `Diagnosis`: the cause sentence an engineer
would write first in the incident channel, e.g.

    libvirtd on hv-07 hung 45 s: 10 of 10 workers busy, 8 calls queued; they wait on guest 'web 1' whose
    QEMU is stopped (state T); 14 connections from memstat-poller (pid 4242)

and the `diagnosis` measurement's fields (tsdb.schema). Names (guests, processes, threads) are data: they go
into the sentence as they are, quoted with '...', and into the fields unchanged (the guest list as JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from collector.admin_api import ClientGroup, describe_clients
from collector.daemon_process import ProcessEvidence
from collector.daemon_threads import ThreadInfo, census, describe_census
from collector.guest_processes import StuckGuest
from collector.job_locks import JobHolder
from tsdb import Point
from tsdb.point import printable

TRIGGERS = ("hang_start", "hang", "segfault", "restart", "manual")
#: an admin reading older than this is said to be old in the sentence
STALE_POOL_SECONDS = 15.0
STUCK_WORDS = {"T": "is stopped (state T)", "t": "is stopped by a tracer (state t)",
               "D": "is in uninterruptible sleep (state D)"}


@dataclass(frozen=True)
class Evidence:
    """What the agent knows about the daemon at one moment; each part empty when it could not be read."""

    process: ProcessEvidence = field(default_factory=ProcessEvidence)
    threads: list[ThreadInfo] | None = None
    pool: dict | None = None  # admin API fields (collector.admin_api THREAD_POOL_FIELDS)
    pool_age_seconds: float | None = None
    clients: list[ClientGroup] | None = None
    job_holders: list[JobHolder] = field(default_factory=list)
    stuck_guests: dict[str, StuckGuest] = field(default_factory=dict)
    headline: str = ""  # the call that was not answered, or the kernel's segfault line, or the restart


@dataclass(frozen=True)
class Diagnosis:
    """The cause sentence and the `diagnosis` measurement's fields for one trigger."""

    trigger: str
    cause: str
    fields: dict
    reasons: str = ""  # the evidence clauses of the cause, without its opening

    def point(self, host: str, time_ns: int) -> Point:
        """Return the `diagnosis` point."""
        return Point("diagnosis", {"host": host, "trigger": self.trigger}, {"cause": self.cause, **self.fields},
                     time_ns)


def _quoted(name: str) -> str:
    return f"'{printable(name)}'"


def _pool_words(pool: dict, age: float | None) -> str:
    """'10 of 10 workers busy, 8 calls queued'; a pool that has not grown to its maximum says so ('3 of 3
    workers busy (max 10)': measured, libvirt 9.0 may queue calls rather than start more workers)."""
    if "workers_free" not in pool:
        return ""
    current = pool.get("workers_current", 0)
    text = f"{current - pool['workers_free']} of {current} workers busy"
    if pool.get("workers_max", current) != current:
        text += f" (max {pool.get('workers_max')})"
    queued = pool.get("job_queue_depth", 0)
    text += f", {queued} call{'' if queued == 1 else 's'} queued"
    if age is not None and age >= STALE_POOL_SECONDS:
        text += f" (admin API as of {age:.0f} s ago)"
    return text


def _saturated(pool: dict | None) -> bool:
    return bool(pool) and "workers_free" in pool and (pool["workers_free"] == 0 or pool.get("job_queue_depth", 0) > 0)


def _guest_words(stuck: dict[str, StuckGuest], saturated: bool) -> str:
    """The guests whose QEMU cannot run: what the busy workers wait on when the pool is full."""
    if not stuck:
        return ""
    names = sorted(stuck)
    if len(names) == 1:
        name = names[0]
        words = STUCK_WORDS.get(stuck[name].state, f"is in state {stuck[name].state}")
        if saturated:
            return f"they wait on guest {_quoted(name)} whose QEMU {words}"
        return f"the QEMU of guest {_quoted(name)} {words}"
    listed = ", ".join(f"{_quoted(n)} (state {stuck[n].state})" for n in names)
    return f"they wait on guests {listed} whose QEMU cannot run" if saturated else \
        f"the QEMU of guests {listed} cannot run"


def _process_words(process: ProcessEvidence, threads: list[ThreadInfo] | None) -> str:
    """The process clause: said when it is gone, stopped, in D state or has threads that are not sleeping."""
    if process.running is False:
        return "no libvirtd process is running"
    counted = census(threads) if threads else None
    if process.state in ("T", "t", "D"):
        if counted is None:
            return process.describe()
        if counted.by_state.get(process.state) == counted.total:  # every thread in the process's state
            return process.describe() + (" (one thread)" if counted.total == 1 else
                                         f", all {counted.total} of its threads")
        return f"{process.describe()}: {describe_census(counted)}"
    if counted is not None and counted.not_sleeping:
        return f"libvirtd's {describe_census(counted)}"
    return ""


def _job_holder(holders: list[JobHolder], stuck: dict[str, StuckGuest]) -> JobHolder | None:
    """The job-lock holder to name: of a stuck guest when the log shows one, else the newest."""
    for holder in holders:
        if holder.domain in stuck:
            return holder
    return holders[0] if holders else None


def _fields(trigger: str, evidence: Evidence, hang_seconds: float, holder: JobHolder | None) -> dict:
    fields: dict = {"hang_seconds": round(float(hang_seconds), 3)}
    process = evidence.process
    if process.running is False:
        fields["process_state"] = "gone"
    elif process.state:
        fields["process_state"] = process.state
    if evidence.threads is not None:
        counted = census(evidence.threads)
        by_state = counted.by_state
        fields.update(threads=counted.total, threads_running=by_state.get("R", 0),
                      threads_disk_wait=by_state.get("D", 0),
                      threads_stopped=by_state.get("T", 0) + by_state.get("t", 0),
                      threads_not_sleeping="; ".join(t.describe() for t in counted.not_sleeping[:20]))
    pool = evidence.pool or {}
    if "workers_free" in pool:
        fields.update(workers_busy=pool.get("workers_current", 0) - pool["workers_free"],
                      workers_max=pool.get("workers_max", 0), workers_priority=pool.get("workers_priority", 0),
                      job_queue_depth=pool.get("job_queue_depth", 0))
        if evidence.pool_age_seconds is not None:
            fields["pool_age_seconds"] = round(float(evidence.pool_age_seconds), 3)
    if evidence.clients is not None:
        groups = evidence.clients
        fields["clients_listed"] = sum(g.connections for g in groups)
        fields["agent_connections"] = sum(g.connections for g in groups if g.own)
        others = [g for g in groups if not g.own]
        if others:
            top = others[0]
            fields["top_client"] = f"{top.process} (pid {top.pid})" if top.pid is not None else top.process
            fields["top_client_connections"] = top.connections
        fields["clients_by_process"] = describe_clients(groups, limit=10)
    if holder is not None:
        fields["job_domain"] = holder.domain
        for name, value in (("job_waiting_api", holder.waiting_api), ("job_holder_api", holder.holder_api),
                            ("job_holder_thread", holder.holder_thread), ("job_age_seconds", holder.age_seconds)):
            if value is not None:
                fields[name] = value
        fields["job_held_by_agent"] = int(holder.held_by_agent)
    fields["stuck_guests"] = len(evidence.stuck_guests)
    fields["stuck_guest_names_json"] = json.dumps(sorted(evidence.stuck_guests), ensure_ascii=False)
    return fields


def _job_words(holder: JobHolder, named_guest: bool) -> str:
    """Who holds a guest's job: 'its job held 30 s by thread 8146 in remoteDispatchDomainMemoryStats' when
    the guest was just named, else 'the job of guest 'x' held ...'."""
    held = f" {holder.age_seconds:.0f} s" if holder.age_seconds is not None else ""
    by = []
    if holder.holder_thread is not None:
        by.append(f"thread {holder.holder_thread}")
    if holder.holder_api is not None:
        by.append(f"in {holder.holder_api}")
    who = " ".join(by) or "another call"
    if holder.held_by_agent:
        who = "the guest agent" + (f", {who}" if by else "")
    whose = "its job" if named_guest else f"the job of guest {_quoted(holder.domain)}"
    return f"{whose} held{held} by {who} (daemon log)"


def diagnose(host: str, trigger: str, evidence: Evidence, hang_seconds: float = 0.0) -> Diagnosis:
    """Return the diagnosis of `trigger` (hang_start, hang, segfault, restart, manual) from `evidence`."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown diagnosis trigger {trigger!r}: one of {', '.join(TRIGGERS)}")
    holder = _job_holder(list(evidence.job_holders), evidence.stuck_guests)
    process = _process_words(evidence.process, evidence.threads)
    crashed = trigger in ("segfault", "restart")
    leading = not crashed and evidence.process.running is not False and (
        evidence.process.state in ("T", "t", "D") or any(t.state == "D" for t in evidence.threads or ()))
    guests = _guest_words(evidence.stuck_guests, _saturated(evidence.pool))
    if holder is not None:
        named = len(evidence.stuck_guests) == 1 and holder.domain in evidence.stuck_guests
        guests = (", " if named else "; ").join(part for part in (guests, _job_words(holder, named)) if part)
    pool = _pool_words(evidence.pool or {}, evidence.pool_age_seconds)
    if crashed and pool:
        pool = f"before it: {pool}"
    clauses = [evidence.headline] if crashed else []
    clauses += [process if leading else "", pool, guests]
    if evidence.clients:
        clauses.append(describe_clients(evidence.clients, limit=2))
    if not leading:
        clauses.append(process)
    if not crashed:
        clauses.append(evidence.headline)
    said = "; ".join(clause for clause in clauses if clause)
    host = printable(host)
    opening = {"hang_start": f"libvirtd on {host} hung {hang_seconds:.0f} s",
               "hang": f"libvirtd on {host} hung {hang_seconds:.0f} s", "segfault": f"libvirtd on {host} crashed",
               "restart": f"libvirtd on {host} restarted", "manual": f"libvirtd on {host}"}[trigger]
    cause = f"{opening}: {said}" if said else f"{opening}: no evidence could be read (no process, admin API or log)"
    return Diagnosis(trigger, cause, _fields(trigger, evidence, hang_seconds, holder), said)
