"""The data model: every measurement, tag and field virtwatch writes, with units in field names.

This module is the contract between the agent and everything central (alerts, dashboard, users' own
Grafana panels). `docs/metrics.md` is generated from it: `python -m tsdb.schema > docs/metrics.md`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

FIELD_TYPES = ("float", "int", "bool", "str")


@dataclass(frozen=True)
class Tag:
    """A tag: an indexed string that identifies a series."""

    name: str
    description: str
    always: bool = True


@dataclass(frozen=True)
class Field:
    """A field: a typed value; the unit is part of the name (`_bytes`, `_seconds`, `_ms`, `_total`)."""

    name: str
    type: str
    description: str


@dataclass(frozen=True)
class Measurement:
    """A measurement: what one kind of point describes, its tags and its fields."""

    name: str
    description: str
    tags: tuple[Tag, ...]
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        """Return the field called `name` (KeyError when there is none)."""
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{self.name} has no field {name!r}")


@dataclass(frozen=True)
class EventKind:
    """A kind of event the agent reports: its default severity, its group, and how the dashboard and sentences
    name it (`label`, plural: "libvirtd restarts"; `noun`, one and several: "1 restart", "41 restarts")."""

    name: str
    severity: str
    group: str
    label: str
    noun: tuple[str, str]
    description: str
    #: the conditions this event ends, each named by the kind that starts it (daemon_up ends daemon_down)
    ends: tuple[str, ...] = ()


HOST = Tag("host", "the hypervisor host's name (`[agent] host_name`)")

DOMAIN_STATES = {
    0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down", 5: "shut off",
    6: "crashed", 7: "suspended (PM)",
}  # virDomainState, libvirt include/libvirt/libvirt-domain.h

MEASUREMENTS: dict[str, Measurement] = {m.name: m for m in (
    Measurement(
        "domain",
        "One guest, once per interval, from one bulk getAllDomainStats call with NOWAIT.",
        (HOST, Tag("domain", "the libvirt domain name, exactly as libvirt has it"),
         Tag("<metadata tags>", "tags read from domain metadata where configured (for example nova instance "
             "name and project)", always=False)),
        (
            Field("state_code", "int", "virDomainState: " + ", ".join(f"{k} {v}" for k, v in DOMAIN_STATES.items())),
            Field("state_reason_code", "int", "the reason for the state (virDomain*Reason of that state)"),
            Field("stats_partial", "int", "1 when the bulk call returned only partial stats for this domain (its "
                  "job lock is held: a wedged guest), else 0"),
            Field("cpu_time_seconds_total", "float", "CPU time used by the guest (cpu.time)"),
            Field("cpu_user_seconds_total", "float", "user CPU time (cpu.user)"),
            Field("cpu_system_seconds_total", "float", "system CPU time (cpu.system)"),
            Field("vcpus", "int", "current virtual CPUs (vcpu.current)"),
            Field("vcpus_max", "int", "maximum virtual CPUs (vcpu.maximum)"),
            Field("memory_max_bytes", "int", "memory the guest may have (balloon.maximum)"),
            Field("memory_current_bytes", "int", "memory the balloon currently gives the guest (balloon.current)"),
            Field("memory_rss_bytes", "int", "resident memory of the guest's process on the host (balloon.rss)"),
            Field("memory_available_bytes", "int", "memory the guest sees as available (balloon.available)"),
            Field("memory_unused_bytes", "int", "memory the guest leaves unused (balloon.unused)"),
            Field("block_read_bytes_total", "int", "bytes read, all disks"),
            Field("block_write_bytes_total", "int", "bytes written, all disks"),
            Field("block_read_requests_total", "int", "read requests, all disks"),
            Field("block_write_requests_total", "int", "write requests, all disks"),
            Field("block_errors_total", "int", "block errors, all disks (block.N.errors)"),
            Field("net_rx_bytes_total", "int", "bytes received, all interfaces"),
            Field("net_tx_bytes_total", "int", "bytes sent, all interfaces"),
            Field("net_rx_packets_total", "int", "packets received, all interfaces"),
            Field("net_tx_packets_total", "int", "packets sent, all interfaces"),
            Field("net_rx_errors_total", "int", "receive errors, all interfaces"),
            Field("net_tx_errors_total", "int", "transmit errors, all interfaces"),
            Field("net_rx_drops_total", "int", "received packets dropped, all interfaces"),
            Field("net_tx_drops_total", "int", "sent packets dropped, all interfaces"),
        ),
    ),
    Measurement(
        "domain_round",
        "The agent's count of one bulk-stats round's domain points, stamped like them (tsdb.wedged): what the "
        "domain-stability SLI reads, one series per host instead of one per guest.",
        (HOST,),
        (
            Field("domain_points", "int", "domain points of the round with a state_code (domain stability's events)"),
            Field("wedged_points", "int", "those of a wedged guest: stats_partial = 1, not paused starting up"),
        ),
    ),
    Measurement(
        "libvirtd",
        "The libvirt daemon of one host: reachability, a timed stats probe, its process and its worker pool.",
        (HOST,),
        (
            Field("up", "int", "1 unless the daemon is down (no process, nobody listening, connection lost with the "
                  "process gone): a hung daemon is up and hung"),
            Field("hung", "int", "1 while the daemon's process lives but a probe or connect waits past its deadline "
                  "(stopped, D state, all workers stuck); a hang ends after `hang_end_probes` probes in a row "
                  "answer in time, else 0"),
            Field("probe_ok", "int", "1 when this interval's stats probe answered within its deadline, 0 when it "
                  "did not (or the daemon is down or hung); absent while a probe still waits within its deadline"),
            Field("probe_outstanding_seconds", "float", "how long the probe (or connect) in flight has waited for an "
                  "answer, 0 when none waits: a hang measured continuously, not by repeated deadlines"),
            Field("hang_seconds", "float", "how long the current hang has lasted, from the first unanswered call; 0 "
                  "when not hung"),
            Field("probe_latency_ms", "float", "time of the stats probe (a real getAllDomainStats call, not a "
                  "ping: priority workers answer pings while normal workers are stuck)"),
            Field("pid", "int", "process id of the daemon"),
            Field("start_time_seconds", "float", "when the daemon process started, Unix seconds"),
            Field("restarts_total", "int", "restarts seen by this agent (pid or start time changed)"),
            Field("segfaults_total", "int", "segfaults of the daemon seen in the kernel log by this agent"),
            Field("rss_bytes", "int", "resident memory of the daemon process"),
            Field("threads", "int", "threads of the daemon process"),
            Field("open_fds", "int", "file descriptors the daemon holds open"),
            Field("max_fds", "int", "the daemon's soft limit on open file descriptors"),
            Field("cpu_user_seconds_total", "float", "user CPU time of the daemon process"),
            Field("cpu_system_seconds_total", "float", "system CPU time of the daemon process"),
            Field("workers_min", "int", "admin API: minimum worker threads of the libvirtd server"),
            Field("workers_max", "int", "admin API: maximum worker threads"),
            Field("workers_current", "int", "admin API: worker threads that exist now"),
            Field("workers_free", "int", "admin API: worker threads waiting for a job"),
            Field("workers_priority", "int", "admin API: priority worker threads"),
            Field("job_queue_depth", "int", "admin API: calls waiting for a free worker"),
            Field("clients", "int", "admin API: connected clients"),
            Field("clients_max", "int", "admin API: the most clients the server accepts"),
            Field("log_errors_total", "int", "error lines in the daemon's log seen by this agent"),
        ),
    ),
    Measurement(
        "host",
        "The hypervisor host's load, once per interval.",
        (HOST,),
        (
            Field("load1", "float", "1-minute load average"),
            Field("load5", "float", "5-minute load average"),
            Field("load15", "float", "15-minute load average"),
            Field("cpu_busy_percent", "float", "CPU time not idle over the last interval, all CPUs, 0 to 100"),
            Field("cpus", "int", "online CPUs"),
            Field("memory_total_bytes", "int", "total memory (MemTotal)"),
            Field("memory_available_bytes", "int", "memory available for new work (MemAvailable)"),
            Field("domains_running", "int", "domains running"),
            Field("domains_defined", "int", "domains defined, running or not"),
            Field("libvirt_calls_per_second", "float", "calls this agent made into libvirt over the last interval"),
        ),
    ),
    Measurement(
        "event",
        "Something that happened: a daemon or domain failure, a hang, a restart, a classified log error.",
        (HOST, Tag("kind", "what happened (see the event kinds below)"),
         Tag("severity", "critical, warning or info"),
         Tag("domain", "the domain concerned, when there is one", always=False)),
        (
            Field("message", "str", "a sentence for a human, with the evidence"),
            Field("count", "int", "always 1: lets numeric-only stores and count() queries see events"),
            Field("duration_seconds", "float", "how long the condition lasted, on events that end one (hang_end, "
                  "daemon_up)"),
        ),
    ),
    Measurement(
        "diagnosis",
        "Why libvirtd is failing, from evidence the agent reads without the daemon's help (its process and "
        "threads in /proc, the admin API's worker pool and client list, job-lock holders in its log, the QEMU "
        "processes of its guests): one point with every hang_start, every interval of a hang, every segfault "
        "and every restart. `cause` is the sentence the event message, the page and the dashboard carry.",
        (HOST, Tag("trigger", "what it explains: hang_start, hang (an interval of an ongoing hang), segfault or "
                   "restart")),
        (
            Field("cause", "str", "an engineer's first line in the incident channel, e.g. `libvirtd on hv-07 hung "
                  "45 s: 10 of 10 workers busy, 8 calls queued; they wait on guest 'web 1' whose QEMU is stopped "
                  "(state T); 14 connections from memstat-poller (pid 4242)`"),
            Field("hang_seconds", "float", "how long the hang has lasted (0 for segfault and restart)"),
            Field("process_state", "str", "the daemon process's state letter (R, S, D, T, Z), or `gone`"),
            Field("threads", "int", "threads of the daemon process"),
            Field("threads_running", "int", "threads in state R"),
            Field("threads_disk_wait", "int", "threads in uninterruptible sleep (D)"),
            Field("threads_stopped", "int", "threads stopped (T, t)"),
            Field("threads_not_sleeping", "str", "the threads that are not sleeping, in words: name, tid, state, "
                  "wchan"),
            Field("workers_busy", "int", "admin API: workers busy with a call (current minus free)"),
            Field("workers_max", "int", "admin API: maximum worker threads"),
            Field("workers_priority", "int", "admin API: priority worker threads"),
            Field("job_queue_depth", "int", "admin API: calls waiting for a free worker"),
            Field("pool_age_seconds", "float", "age of the admin API reading used (it cannot be read from a "
                  "stopped daemon: then the last one before the hang)"),
            Field("clients_listed", "int", "admin API: connected clients listed (virAdmServerListClients)"),
            Field("top_client", "str", "the local process holding the most connections, e.g. `nova-compute (pid "
                  "4242)`"),
            Field("top_client_connections", "int", "connections of that process"),
            Field("agent_connections", "int", "connections of the virtwatch agent itself (its libvirt connection "
                  "and admin helper)"),
            Field("clients_by_process", "str", "connections by local process, in words, the agent's own named as "
                  "such"),
            Field("job_domain", "str", "the guest whose job lock the daemon's log shows held (the newest)"),
            Field("job_waiting_api", "str", "the API that waited for that job lock"),
            Field("job_holder_api", "str", "the API that holds it"),
            Field("job_holder_thread", "int", "the daemon thread id that holds it"),
            Field("job_held_by_agent", "int", "1 when the QEMU guest agent part of the job holds it"),
            Field("job_age_seconds", "float", "how long the job had been held when the log line was written"),
            Field("stuck_guests", "int", "guests whose QEMU process is stopped (T) or in D state"),
            Field("stuck_guest_names_json", "str", "their names, a JSON list (names are data: any character)"),
        ),
    ),
    Measurement(
        "forensics",
        "The evidence captured at the moment of failure, before anyone restarts the daemon: every libvirtd "
        "thread (name, state, wchan, syscall, kernel stack), the worker pool and client list, the daemon log's "
        "and kernel log's last lines, the QEMU processes' states and the diagnosis; at most once per incident, "
        "read only from /proc, the admin socket and files (never the libvirt connection), each step under its "
        "own deadline. Also written as a file in the agent's data directory. Decode with "
        "`tsdb.forensics.decode_bundle`.",
        (HOST, Tag("trigger", "hang (a hang that lasted `forensics_after_hang_seconds`), segfault, restart or "
                   "manual (`virtwatch diagnose`)")),
        (
            Field("bundle", "str", "the bundle: JSON, or zlib-compressed JSON in base64 when the JSON is over "
                  "the store's 64 KB string limit (see `encoding`)"),
            Field("encoding", "str", "`json` or `zlib+base64`"),
            Field("size_bytes", "int", "size of the bundle's JSON before encoding"),
            Field("capture_ms", "float", "how long the capture took"),
            Field("steps_cut", "str", "the capture steps abandoned at their deadline or failed, comma-separated "
                  "(empty when every step finished)"),
            Field("cause", "str", "the diagnosis's cause sentence"),
            Field("file", "str", "where the bundle was written on the agent's host"),
        ),
    ),
    Measurement(
        "collector",
        "The agent's own health, once per interval.",
        (HOST,),
        (
            Field("scrape_duration_ms", "float", "time of the last full collection"),
            Field("points_written_total", "int", "points the store accepted since the agent started"),
            Field("points_spooled_total", "int", "points put in the on-disk spool while the store was unreachable"),
            Field("points_replayed_total", "int", "spooled points written to the store later"),
            Field("points_dropped_total", "int", "points lost because the spool was full"),
            Field("spool_bytes", "int", "size of the on-disk spool"),
            Field("points_queued", "int", "points waiting in memory for the shipper (not yet written nor spooled)"),
            Field("store_reachable", "int", "1 while the last write reached the store, 0 while the agent spools"),
            Field("libvirt_overruns_total", "int", "intervals at which the libvirt source was still busy with the "
                  "last round (a call waiting on the daemon): no second round was started"),
            Field("stats_overruns_total", "int", "rounds whose bulk stats call waited past the deadline, or found "
                  "the last one still waiting, while the probe answered (a guest's monitor does not answer)"),
            Field("daemon_overruns_total", "int", "intervals at which the daemon's process or admin API read was "
                  "still running from the last one"),
        ),
    ),
    Measurement(
        "sli",
        "SLI rollup: good and valid events of one SLO on one host per minute and per hour, written by the alert "
        "engine (alerts.rollups) so that long burn-rate windows and the dashboard read one row per host per "
        "hour instead of every raw point. The point's time is the start of its minute or hour.",
        (HOST, Tag("slo", "the SLO's name in the SLO file"),
         Tag("resolution", "`1m` (a minute's counts) or `1h` (an hour's, the sum of its minutes)")),
        (
            Field("good_total", "float", "good events in the minute or hour (probes that succeeded, fast probes, "
                  "healthy domain points, intervals with a collector point, or a custom SLI's good count)"),
            Field("valid_total", "float", "all events the SLI counts in the minute or hour (the SLI's total)"),
        ),
    ),
    Measurement(
        "sli_fleet",
        "SLI rollup of the whole fleet: the `sli` rollups of one SLO summed over every host per minute and per hour, "
        "written with them by the alert engine, so fleet-wide charts read one series per SLO instead of one per host.",
        (Tag("slo", "the SLO's name in the SLO file"),
         Tag("resolution", "`1m` (a minute's counts) or `1h` (an hour's, the sum of its minutes)")),
        (
            Field("good_total", "float", "good events of every host in the minute or hour"),
            Field("valid_total", "float", "all events the SLI counts, of every host, in the minute or hour"),
        ),
    ),
    Measurement(
        "slo_budget",
        "An SLO evaluated by the alert engine each round, per host and for the fleet: the period's good and valid "
        "events and the error budget left (alerts.records), so the dashboard reads the engine's figures.",
        (Tag("host", "the host; absent on the fleet-wide row", always=False), Tag("slo", "the SLO's name")),
        (
            Field("good_total", "float", "good events over the SLO period"),
            Field("valid_total", "float", "valid events over the SLO period"),
            Field("budget_remaining_percent", "float", "error budget left over the period: 100 untouched, 0 spent, "
                  "negative when overspent"),
        ),
    ),
    Measurement(
        "libvirtd_leak",
        "libvirtd's leak signs as the alert engine's leak rule found them each round, per host (alerts.leak_rule, "
        "its math alerts.leaks), so the dashboard reads the engine's figures instead of fitting every host's points.",
        (Tag("host", "the host"),),
        (
            Field("open_fds", "float", "descriptors libvirtd holds open (its newest point)"),
            Field("max_fds", "float", "its soft limit of descriptors"),
            Field("fd_share_percent", "float", "open_fds / max_fds, in percent"),
            Field("fd_limit_in_seconds", "float", "when the fit of the open fds reaches the limit, seconds from the "
                  "record; absent when it does not rise"),
            Field("rss_growth_per_hour_bytes", "float", "the slope of resident memory since the daemon's start; "
                  "absent with fewer hours of points than the rule needs"),
            Field("fd_leak", "int", "1 when the descriptors show a leak sign (the LibvirtdFdLeak condition)"),
            Field("rss_leak", "int", "1 when the memory grows steadily (the LibvirtdMemoryLeak condition)"),
            Field("leak_sign", "str", "the signs in a few words (\"fds 99% of 8,000 · RSS +12.0 MiB/h\"), empty "
                  "when none"),
            Field("leak_detail", "str", "the signs' sentences, one per line"),
        ),
    ),
    Measurement(
        "slo_burn",
        "Each alert window of an SLO evaluated by the alert engine each round, per host and for the fleet.",
        (Tag("host", "the host; absent on the fleet-wide row", always=False), Tag("slo", "the SLO's name"),
         Tag("window", "the catalog row: severity-long-short, e.g. page-1h-5m (alerts.windows)")),
        (
            Field("burn_long", "float", "burn rate over the long window, in multiples of the budget rate (absent "
                  "with no events)"),
            Field("burn_short", "float", "burn rate over the short window, in multiples of the budget rate"),
            Field("factor", "float", "the burn rate both windows must reach for the window to fire"),
            Field("firing", "int", "1 when both windows burn at least the factor, else 0"),
        ),
    ),
    Measurement(
        "alert",
        "An alert notification decided by the alert engine: one point when an alert starts firing and one when "
        "it resolves, so the dashboard can list past alerts with their evidence.",
        (Tag("host", "the host concerned; absent on fleet-wide SLO alerts", always=False),
         Tag("alertname", "the alert's name (LibvirtdDown, LibvirtdHung, SLOBurnRate...)"),
         Tag("severity", "page or ticket"),
         Tag("slo", "the SLO's name, on SLO burn-rate alerts", always=False)),
        (
            Field("status", "str", "firing or resolved"),
            Field("fingerprint", "str", "the alert's stable identity: 16 hex digits of the SHA-256 of its labels"),
            Field("summary", "str", "one line: what is wrong, with figures"),
            Field("description", "str", "the evidence: the events or burn rates behind it"),
            Field("silenced", "int", "1 when a silence muted the notification, else 0"),
        ),
    ),
    Measurement(
        "soak",
        "The load `virtwatch soak` generated, per kind of libvirt call, every 10 s and at the end of each "
        "concurrency step, so the correlation page can set failures against the load that preceded them.",
        (HOST, Tag("call", "the libvirt call: connect, stats (getAllDomainStats), list (listAllDomains), define, "
                   "undefine, create, destroy, suspend, resume, state"),
         Tag("run", "the soak run's id, also in its test domains' names (virtwatch-soak-<run>-<n>)")),
        (
            Field("clients", "int", "concurrent clients (threads, each with its own connection) in the step"),
            Field("calls_total", "int", "calls of this kind finished since the soak started, failed ones included"),
            Field("errors_total", "int", "calls of this kind that failed since the soak started (timeouts "
                  "included)"),
            Field("timeouts_total", "int", "calls of this kind that missed their deadline since the soak started"),
            Field("calls_per_second", "float", "calls of this kind finished per second over the interval"),
            Field("errors_per_second", "float", "calls of this kind that failed per second over the interval"),
            Field("latency_p50_ms", "float", "median time of the interval's calls the daemon answered (results and "
                  "libvirt errors; timeouts and lost connections left out)"),
            Field("latency_p99_ms", "float", "99th percentile of the same times"),
            Field("latency_max_ms", "float", "the longest of the same times"),
        ),
    ),
)}

#: the groups of event kinds, each a kind's `group`: name -> what its kinds are
EVENT_GROUPS = {
    "daemon_failure": "libvirtd failed or stopped answering",
    "recovery": "a libvirtd condition ended (an outage, a hang)",
    "guest_failure": "a guest stopped: its QEMU process died or the guest crashed",
    "guest_problem": "a guest in trouble that may still run: a disk error, a watchdog, no answer",
    "agent": "the agent's own trouble",
    "log_signature": "an error line of the daemon's log that matched a known failure signature",
}

#: every event kind, grouped: the order here is the order every list of kinds shows (the correlation page's
#: options, the groups below)
EVENT_KINDS: dict[str, EventKind] = {k.name: k for k in (
    EventKind("restart", "warning", "daemon_failure", "libvirtd restarts", ("restart", "restarts"),
              "the libvirtd process changed (new pid or start time); the message is the diagnosis's cause "
              "sentence (what ended the old process, as far as the agent saw)",
              ends=("hang_start", "daemon_down")),  # a new process answers: neither hung nor down
    EventKind("segfault", "critical", "daemon_failure", "libvirtd segfaults", ("segfault", "segfaults"),
              "the kernel logged a segfault in a libvirtd thread; the message is the diagnosis's cause sentence "
              "(the thread, where, and the daemon's state before it)"),
    EventKind("hang_start", "critical", "daemon_failure", "libvirtd hangs", ("hang", "hangs"),
              "a probe or connect into a running libvirtd waited past its deadline (process stopped or in D "
              "state, worker pool exhausted); the message is the diagnosis's cause sentence (a `diagnosis` point "
              "goes with it)"),
    EventKind("daemon_down", "critical", "daemon_failure", "libvirtd outages", ("outage", "outages"),
              "libvirtd is gone: no process, nobody listening on its socket, or the connection lost with the "
              "process gone", ends=("hang_start",)),
    EventKind("keepalive_timeout", "warning", "daemon_failure", "keepalive timeouts",
              ("keepalive timeout", "keepalive timeouts"), "the client keepalive closed the connection"),
    EventKind("hang_end", "info", "recovery", "libvirtd hang ends", ("hang end", "hang ends"),
              "a hung libvirtd answered `hang_end_probes` probes in a row in time, or went down",
              ends=("hang_start",)),
    EventKind("daemon_up", "info", "recovery", "libvirtd outage ends", ("outage end", "outage ends"),
              "libvirtd is there again after being down (answering, or hung: then a hang_start follows)",
              ends=("daemon_down", "hang_start")),
    EventKind("domain_failed", "critical", "guest_failure", "guest failures", ("guest failure", "guest failures"),
              "a guest stopped with reason failed (its QEMU process died)"),
    EventKind("domain_crashed", "critical", "guest_failure", "guest crashes", ("guest crash", "guest crashes"),
              "a guest crashed (lifecycle CRASHED or state crashed)"),
    EventKind("domain_io_error", "warning", "guest_problem", "guest I/O errors",
              ("guest I/O error", "guest I/O errors"), "a guest's disk reported an I/O error"),
    EventKind("domain_watchdog", "warning", "guest_problem", "guest watchdog firings",
              ("guest watchdog firing", "guest watchdog firings"), "a guest's watchdog fired"),
    EventKind("domain_wedged", "warning", "guest_problem", "wedged guests", ("wedged guest", "wedged guests"),
              "a guest cannot answer (its QEMU process stopped or in D state, its job held, its monitor busy): it "
              "is left out of the bulk stats call and its points are partial"),
    EventKind("points_dropped", "warning", "agent", "dropped-point events",
              ("dropped-point event", "dropped-point events"), "the agent lost points: its spool was full while "
              "the store was unreachable, or the store refused them"),
    EventKind("log_error", "warning", "log_signature", "daemon log errors", ("log error", "log errors"),
              "an error line in the daemon's log matched a known failure signature; the kind is "
              "`log_<signature>` (see collector's signature table)"),
)}

#: a classified log signature's kind is `log_<signature>` (collector.signatures): EVENT_KINDS lists it once, as
#: the placeholder log_error
LOG_KIND_PREFIX = "log_"
LOG_KIND_PLACEHOLDER = "log_error"


def kinds_of(group: str) -> tuple[str, ...]:
    """Return the event kinds of a group (EVENT_GROUPS), in EVENT_KINDS' order."""
    if group not in EVENT_GROUPS:
        raise KeyError(f"no event group {group!r}: one of {', '.join(EVENT_GROUPS)}")
    return tuple(k.name for k in EVENT_KINDS.values() if k.group == group)


#: libvirtd failing: what the correlation page's daemon button picks and the simulator's hazard draws
DAEMON_FAILURE_KINDS = kinds_of("daemon_failure")
#: the kinds that end a daemon condition (hang_end, daemon_up): never a failure of their own
RECOVERY_KINDS = kinds_of("recovery")
#: the event kinds that are a guest failing (its QEMU process died, or the guest crashed): the bad events of the
#: domain_stability SLI (alerts.sli) beside wedged guests' partial points
GUEST_FAILURE_KINDS = kinds_of("guest_failure")
#: a guest in trouble that may run on (a disk error, a watchdog, a wedged guest): not a bad event of the SLI
GUEST_PROBLEM_KINDS = kinds_of("guest_problem")
#: every kind about one guest (these events carry the `domain` tag): what the correlation page's guest button picks
GUEST_KINDS = GUEST_FAILURE_KINDS + GUEST_PROBLEM_KINDS
#: the failures one may set against load (the correlation page's kinds, the log_<signature> kinds aside)
FAILURE_KINDS = DAEMON_FAILURE_KINDS + GUEST_KINDS


def ended_by(kind: str) -> tuple[str, ...]:
    """Return the kinds whose event ends the condition `kind` starts (hang_start: restart, daemon_down, hang_end,
    daemon_up), in EVENT_KINDS' order."""
    return tuple(k.name for k in EVENT_KINDS.values() if kind in k.ends)


def is_log_kind(kind: str) -> bool:
    """Say whether a kind is a classified log signature's (`log_<signature>`, or the placeholder log_error)."""
    return kind.startswith(LOG_KIND_PREFIX) and len(kind) > len(LOG_KIND_PREFIX)


def event_kind(kind: str) -> EventKind | None:
    """Return what the agent says a kind is: its EventKind; for a `log_<signature>` kind the placeholder's,
    named and labelled for its signature ("'lock_timeout' log errors"); None for a kind the agent never reports."""
    if kind in EVENT_KINDS:
        return EVENT_KINDS[kind]
    if not is_log_kind(kind):
        return None
    placeholder, signature = EVENT_KINDS[LOG_KIND_PLACEHOLDER], kind[len(LOG_KIND_PREFIX):]
    return replace(placeholder, name=kind, label=f"'{signature}' log errors",
                   noun=(f"'{signature}' log error", f"'{signature}' log errors"))


SEVERITIES = ("critical", "warning", "info")


def render_metrics_doc() -> str:
    """Return docs/metrics.md: the measurements, their tags and fields, and the event kinds."""
    out = [
        "# Metrics reference",
        "",
        "Generated from `tsdb/schema.py` by `python -m tsdb.schema > docs/metrics.md`; a test fails when they",
        "drift. Units are part of field names: `_bytes`, `_seconds`, `_ms`, `_percent`, and `_total` for",
        "counters that only grow while the same process lives.",
        "",
    ]
    for m in MEASUREMENTS.values():
        out += [f"## `{m.name}`", "", m.description, "", "| tag | |", "|---|---|"]
        out += [f"| `{t.name}` | {t.description}{'' if t.always else ' (optional)'} |" for t in m.tags]
        out += ["", "| field | type | |", "|---|---|---|"]
        out += [f"| `{f.name}` | {f.type} | {f.description} |" for f in m.fields]
        out.append("")
    out += ["## Event kinds", "", "Each kind is in one group; the label and the nouns are how the dashboard and "
            "its sentences name it; `ends` names the conditions its event ends, each by the kind that starts it.",
            "", "| group | kinds | |", "|---|---|---|"]
    out += [f"| `{g}` | {', '.join(f'`{k}`' for k in kinds_of(g))} | {words} |" for g, words in EVENT_GROUPS.items()]
    out += ["", "| kind | default severity | group | label | one, several | ends | |", "|---|---|---|---|---|---|---|"]
    out += [f"| `{k.name}` | {k.severity} | {k.group} | {k.label} | {k.noun[0]}, {k.noun[1]} | "
            f"{', '.join(f'`{e}`' for e in k.ends)} | {k.description} |" for k in EVENT_KINDS.values()]
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render_metrics_doc())
