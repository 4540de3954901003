"""Rendering: every field of every point as numeric columns (Tables), one fixed chunk of steps at a time.

Randomness is drawn per chunk of CHUNK_STEPS steps from a stream seeded by (seed, chunk), and counters carry
from chunk to chunk, so the points do not depend on the batch size; simulator.points turns Tables into Points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from simulator.fleet import GIB, MAX_CLIENTS, MAX_FDS, MAX_WORKERS, MIB, MIN_WORKERS, PRIO_WORKERS, PROBE_TIMEOUT_MS
from simulator.timeline import (PROBE_DEADLINE_NS, RUNNING, RUNNING_BOOTED, SECOND_NS, SHUTOFF, STATE_DOWN,
                                STATE_HUNG, STATE_UP, steps_within)

if TYPE_CHECKING:
    from simulator.simulation import Simulation

CHUNK_STEPS = 360
RENDER_STREAM = 6

HOST_FIELDS = ("load1", "load5", "load15", "cpu_busy_percent", "cpus", "memory_total_bytes", "memory_available_bytes",
               "libvirt_calls_per_second")
HOST_COUNT_FIELDS = ("domains_running", "domains_defined")  # the agent counts guests only when the daemon answers
LIBVIRTD_ALWAYS = ("up", "hung", "probe_ok", "probe_outstanding_seconds", "hang_seconds", "segfaults_total",
                   "log_errors_total")  # from the agent, the kernel log
LIBVIRTD_PROCESS = ("probe_latency_ms", "pid", "start_time_seconds", "restarts_total", "rss_bytes", "threads",
                    "open_fds", "max_fds", "cpu_user_seconds_total", "cpu_system_seconds_total", "workers_min",
                    "workers_max", "workers_current", "workers_free", "workers_priority", "job_queue_depth", "clients",
                    "clients_max")
COLLECTOR_FIELDS = ("scrape_duration_ms", "points_written_total", "libvirt_overruns_total", "points_spooled_total",
                    "points_replayed_total", "points_dropped_total", "spool_bytes", "points_queued", "store_reachable",
                    "stats_overruns_total", "daemon_overruns_total")
AGENT_INTERVAL_SECONDS = 10.0  # the agent's default: a hung step overruns the libvirt source once per interval
#: what bulk stats give for a guest that is not running: its state and its definition's figures
DOMAIN_DEFINED = ("state_code", "state_reason_code", "vcpus", "vcpus_max", "memory_max_bytes", "memory_current_bytes")
DOMAIN_COUNTERS = ("cpu_time_seconds_total", "cpu_user_seconds_total", "cpu_system_seconds_total",
                   "block_read_bytes_total", "block_write_bytes_total", "block_read_requests_total",
                   "block_write_requests_total", "net_rx_bytes_total", "net_tx_bytes_total", "net_rx_packets_total",
                   "net_tx_packets_total", "net_rx_drops_total", "net_tx_drops_total")
DOMAIN_RUNNING = DOMAIN_DEFINED + ("stats_partial", "memory_rss_bytes", "memory_available_bytes",
                                   "memory_unused_bytes", "block_errors_total", "net_rx_errors_total",
                                   "net_tx_errors_total") + DOMAIN_COUNTERS
DOMAIN_RUNNING_CONSTANTS = ("state_code", "state_reason_code", "vcpus", "vcpus_max", "memory_max_bytes",
                            "memory_current_bytes", "stats_partial", "memory_available_bytes", "net_rx_errors_total",
                            "net_tx_errors_total")
DOMAIN_DEFINED_CONSTANTS = ("state_code", "vcpus", "vcpus_max", "memory_max_bytes", "memory_current_bytes")
FLOAT_COUNTERS = 3  # the CPU seconds; the other counters are ints
#: bytes per block request (read, write) and per packet (rx, tx)
REQUEST_BYTES = (24 * 1024, 16 * 1024)
PACKET_BYTES = (900, 700)
HUNG_QUEUE_MAX = 500  # calls queued behind a hung daemon's stuck workers (clients give up and retry)
#: libvirtd's threads besides its two worker pools: main loop, gmain, gdbus, udev-event, rpc-admin, qemu-event
#: (simulator.diagnoses names them); each running guest adds its event loop thread "vm-<name>"
OTHER_THREADS = 6


def piled_calls(calls_per_second, stuck_seconds):
    """Return the calls queued behind a hung daemon's stuck workers after `stuck_seconds` (an int array)."""
    return np.minimum(0.05 * calls_per_second * stuck_seconds, HUNG_QUEUE_MAX).astype(np.int64)


@dataclass
class Table:
    """One measurement's rows over a chunk in step-major order, each row one point."""

    measurement: str
    steps: np.ndarray                 # local step of each row, non-decreasing
    series: np.ndarray                # host index (or host * D + guest for domains) of each row
    variants: np.ndarray              # which field set each row has
    variant_fields: tuple[tuple[str, ...], ...]
    variant_constants: tuple[tuple[str, ...], ...]  # fields whose value only depends on the series, per variant
    columns: dict[str, np.ndarray]


def _step_major(grid: np.ndarray) -> np.ndarray:
    """Return a (H, n) or (H, D, n) array flattened with the step first: step, host, guest."""
    return np.moveaxis(grid, -1, 0).ravel()


def _accumulate(increments: np.ndarray, carry: np.ndarray, resets: list[tuple[tuple, int, np.ndarray]]):
    """Return running sums of `increments` (..., K, n) along the last axis from `carry` (..., K).

    A reset (index, step, value) starts the sums of row `index` again at `value` at that step (a new process).
    """
    sums = np.cumsum(increments, axis=-1)
    sums += carry[..., None]
    for index, step, value in sorted(resets, key=lambda reset: reset[1]):
        row = sums[index]
        row[..., step:] -= (row[..., step] - value)[..., None]
    return sums


class Renderer:
    """Renders a simulation's chunks in order, carrying counters from one chunk to the next."""

    def __init__(self, sim: Simulation):
        self.sim = sim
        fleet = sim.fleet
        hosts, domains = len(fleet.names), fleet.domains
        self.hosts, self.domains = hosts, domains
        self.step_ns = sim.spec.step_seconds * SECOND_NS
        self.step_s = float(sim.spec.step_seconds)
        h = sim.histories
        self.starts = [np.array(x.process_start_ns, dtype=np.int64) for x in h]
        self.pids = [np.array(x.pids, dtype=np.int64) for x in h]
        self.segfaults = [np.array(sorted(x.segfault_ns), dtype=np.int64) for x in h]
        self.log_errors = [np.array(sorted(x.log_error_ns), dtype=np.int64) for x in h]
        mean_latent = sim.signals.latent.mean(axis=1)
        mean_calls = sim.signals.values["host.libvirt_calls_per_second"].mean(axis=1)
        # counters at the start of the span: what the processes running then have gathered since they started
        age_s = (sim.start_ns - fleet.first_start_ns) / 1e9
        cpu_rate = 0.002 + 0.0015 * mean_calls
        self.process_cpu = np.stack([0.6 * cpu_rate * age_s, 0.4 * cpu_rate * age_s], axis=1)
        uptime_s = (sim.start_ns - fleet.boot_ns) / 1e9
        util = np.clip(fleet.weight * mean_latent[:, None], 0.002, 1.0)
        self.domain_counters = self._counter_rates(util, np.full(util.shape, 1.0)) * uptime_s[..., None]
        self.domain_counters[..., FLOAT_COUNTERS:] = np.floor(self.domain_counters[..., FLOAT_COUNTERS:])
        self.log_background = np.zeros(hosts)
        self._index_at_end: list[int] | None = None  # each host's process index at the last rendered step
        self.written = np.zeros(hosts, dtype=np.int64)
        self.overruns = np.zeros(hosts, dtype=np.int64)  # libvirt_overruns_total so far, per host
        # every point the agent writes besides the per-step ones: events, diagnoses, forensics
        self.events = sim.events
        event_hosts = self.events["host"].map({n: i for i, n in enumerate(fleet.names)}).to_numpy(np.int64)
        written_times = np.concatenate([self.events["time_ns"].to_numpy(np.int64), sim.diagnoses.times])
        self.event_hosts = np.concatenate([event_hosts, sim.diagnoses.hosts])
        self.event_steps = (written_times - sim.start_ns) // self.step_ns

    def _counter_rates(self, util: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Return each counter's increase per second (..., K) for guest utilisations and I/O noise."""
        fleet = self.sim.fleet
        vcpus = fleet.vcpus.reshape(fleet.vcpus.shape + (1,) * (util.ndim - 2))
        io = np.moveaxis(fleet.io_bytes_per_second, -1, 0).reshape((4,) + util.shape[:2] + (1,) * (util.ndim - 2))
        busy_io = (0.3 + 0.7 * util) * noise
        cpu = vcpus * util
        read, write, rx, tx = (io[i] * busy_io for i in range(4))
        drops = rx / PACKET_BYTES[0] * 2e-6
        rates = (cpu, 0.78 * cpu, 0.12 * cpu, read, write, read / REQUEST_BYTES[0], write / REQUEST_BYTES[1], rx, tx,
                 rx / PACKET_BYTES[0], tx / PACKET_BYTES[1], drops, drops * 0.3)
        return np.stack(rates, axis=-1)

    def chunks(self) -> Iterator[tuple[int, list[Table]]]:
        """Yield (first step, tables) for each chunk of the span, in order."""
        for c0 in range(0, self.sim.steps, CHUNK_STEPS):
            c1 = min(c0 + CHUNK_STEPS, self.sim.steps)
            yield c0, self.render(c0, c1)

    def render(self, c0: int, c1: int) -> list[Table]:
        """Return the tables of steps [c0, c1); call for consecutive chunks in order (counters carry)."""
        sim, fleet = self.sim, self.sim.fleet
        rng = np.random.default_rng([sim.spec.seed, RENDER_STREAM, c0 // CHUNK_STEPS])
        n, hosts = c1 - c0, self.hosts
        times = sim.start_ns + (c0 + np.arange(n, dtype=np.int64)) * self.step_ns
        state = sim.state[:, c0:c1]
        latent = sim.signals.latent[:, c0:c1]
        signal = {k: v[:, c0:c1] for k, v in sim.signals.values.items()}
        running, boots, reasons = self._guests(c0, c1)
        guests = self._domain_table(rng, times, state, latent, running, boots, reasons)
        proc = self._process(times, state)
        daemon, daemon_rss = self._libvirtd_table(rng, times, state, latent, signal, proc, guests.running_count)
        host = self._host_table(rng, state, latent, signal, guests.running_count, guests.rss_sum, daemon_rss)
        collector = self._collector_table(rng, c0, c1, state, latent)
        return [host, daemon, collector, guests.table]

    # ---- the daemon process ----

    def _process(self, times: np.ndarray, state: np.ndarray) -> dict[str, np.ndarray]:
        """Return per-step process figures from each host's history (H, n) and the process changes."""
        hosts, n = state.shape
        out = {k: np.zeros((hosts, n), dtype=np.int64) for k in ("pid", "restarts_total", "segfaults_total",
                                                                   "log_errors")}
        start = np.zeros((hosts, n), dtype=np.int64)
        leak_fds = np.zeros((hosts, n))
        leak_rss = np.zeros((hosts, n))
        changes = []
        for h in range(hosts):
            index = np.searchsorted(self.starts[h], times, side="left") - 1  # a change shows from the next point
            out["pid"][h] = self.pids[h][index]
            out["restarts_total"][h] = index
            start[h] = self.starts[h][index]
            out["segfaults_total"][h] = np.searchsorted(self.segfaults[h], times, side="left")
            out["log_errors"][h] = np.searchsorted(self.log_errors[h], times, side="left")
            for step in np.nonzero(np.diff(index, prepend=self._last_index(h, index[0])))[0]:
                changes.append((h, int(step)))
            for leak in self.sim.histories[h].leaks:
                begin = np.maximum(start[h], leak.start_ns)
                leaked_s = np.clip(np.minimum(times, leak.end_ns) - begin, 0, None) / 1e9
                leak_fds[h] += leak.fds_per_second * leaked_s
                leak_rss[h] += leak.rss_bytes_per_second * leaked_s
        self._index_at_end = [int(np.searchsorted(self.starts[h], times[-1], side="left") - 1) for h in range(hosts)]
        out["start_ns"] = start
        out["age_s"] = (times[None, :] - start) / 1e9
        out["leak_fds"], out["leak_rss"] = leak_fds, leak_rss
        out["changes"] = changes
        return out

    def _last_index(self, h: int, first: int) -> int:
        """Return the process index at the previous chunk's last step (the first chunk: the same as its own)."""
        return first if self._index_at_end is None else self._index_at_end[h]

    # ---- guests ----

    def _guests(self, c0: int, c1: int) -> tuple[np.ndarray, list[tuple[int, int, int]], np.ndarray]:
        """Return which guests run (H, D, n), the (host, guest, local step) of each boot, and the shut-off reasons."""
        running = np.ones((self.hosts, self.domains, c1 - c0), dtype=bool)
        reasons = np.zeros(running.shape, dtype=np.int64)
        boots = []
        for h, history in enumerate(self.sim.histories):
            for d, outages in enumerate(history.domain_outages):
                for start, end, reason in outages:
                    first, stop = steps_within(start, end, self.sim.start_ns, self.step_ns)
                    lo, hi = max(first, c0) - c0, min(stop, c1) - c0
                    if lo < hi:
                        running[h, d, lo:hi] = False
                        reasons[h, d, lo:hi] = reason
                    if c0 <= stop < c1 and stop < self.sim.steps:
                        boots.append((h, d, stop - c0))
        return running, boots, reasons

    def _domain_table(self, rng, times, state, latent, running, boots, reasons) -> "_Guests":
        """Return the domain table and the guests' totals per host-step (running count, RSS sum)."""
        fleet = self.sim.fleet
        hosts, domains, n = running.shape
        shape = running.shape
        util = np.clip(fleet.weight[..., None] * latent[:, None, :] * rng.lognormal(0.0, 0.3, size=shape), 0.002, 1)
        util *= running
        noise = rng.lognormal(0.0, 0.5, size=shape)
        increments = np.moveaxis(self._counter_rates(util, noise), -1, 2) * self.step_s  # (H, D, K, n)
        increments *= running[:, :, None, :]
        increments[:, :, FLOAT_COUNTERS:] = np.floor(increments[:, :, FLOAT_COUNTERS:])
        resets = [((h, d), step, increments[h, d, :, step].copy()) for h, d, step in boots]
        counters = _accumulate(increments, self.domain_counters, resets)
        self.domain_counters = counters[..., -1].copy()
        memory_max = np.broadcast_to(fleet.memory_max_bytes[..., None], shape)
        rss = (memory_max * fleet.rss_fraction[..., None] * (0.97 + 0.06 * util)).astype(np.int64) * running
        available = memory_max - 180 * MIB
        unused_share = np.clip(0.7 - 0.5 * util + rng.normal(0.0, 0.03, size=shape), 0.02, 0.95)
        io_errors = self._io_errors(times)
        columns_grid = {
            "state_code": np.where(running, RUNNING, SHUTOFF),
            "state_reason_code": np.where(running, RUNNING_BOOTED, reasons),
            "vcpus": np.broadcast_to(fleet.vcpus[..., None], shape),
            "vcpus_max": np.broadcast_to(fleet.vcpus[..., None], shape),
            "memory_max_bytes": memory_max,
            "memory_current_bytes": memory_max,
            "stats_partial": np.zeros(shape, dtype=np.int64),
            "memory_rss_bytes": rss,
            "memory_available_bytes": available,
            "memory_unused_bytes": (available * unused_share).astype(np.int64),
            "block_errors_total": io_errors,
            "net_rx_errors_total": np.zeros(shape, dtype=np.int64),
            "net_tx_errors_total": np.zeros(shape, dtype=np.int64),
        }
        for k, name in enumerate(DOMAIN_COUNTERS):
            values = counters[:, :, k, :]
            columns_grid[name] = values if k < FLOAT_COUNTERS else values.astype(np.int64)
        visible = np.broadcast_to((state == STATE_UP)[:, None, :], shape)
        keep = _step_major(visible)
        steps = np.broadcast_to(np.arange(n)[:, None, None], (n, hosts, domains)).ravel()[keep]
        series = np.broadcast_to(np.arange(hosts * domains).reshape(1, hosts, domains), (n, hosts, domains))
        table = Table("domain", steps, series.ravel()[keep], (~_step_major(running)[keep]).astype(np.int8),
                      (DOMAIN_RUNNING, DOMAIN_DEFINED), (DOMAIN_RUNNING_CONSTANTS, DOMAIN_DEFINED_CONSTANTS),
                      {name: _step_major(np.asarray(col))[keep] for name, col in columns_grid.items()})
        return _Guests(table, running.sum(axis=1), rss.sum(axis=1))

    def _io_errors(self, times: np.ndarray) -> np.ndarray:
        """Return each guest's block errors since its QEMU process started (H, D, n)."""
        errors = np.zeros((self.hosts, self.domains, len(times)), dtype=np.int64)
        for h, history in enumerate(self.sim.histories):
            for d, instants in enumerate(history.io_error_ns):
                if not instants:
                    continue
                instants = np.array(sorted(instants), dtype=np.int64)
                booted = np.full(len(times), np.iinfo(np.int64).min)
                for start, end, _reason in history.domain_outages[d]:
                    booted = np.where(times >= end, np.maximum(booted, end), booted)
                errors[h, d] = (np.searchsorted(instants, times, side="left")
                                - np.searchsorted(instants, booted, side="left"))
        return errors

    # ---- host, daemon, agent ----

    def _host_table(self, rng, state, latent, signal, running_count, guest_rss, daemon_rss) -> Table:
        fleet = self.sim.fleet
        hosts, n = state.shape
        total = np.broadcast_to(fleet.memory_total_bytes[:, None], (hosts, n))
        cache = (6 * GIB + 4 * GIB * latent) * rng.lognormal(0.0, 0.05, size=(hosts, n))
        available = np.maximum(total - guest_rss - daemon_rss - cache, 0.02 * total).astype(np.int64)
        columns = {
            "load1": signal["host.load1"], "load5": signal["host.load5"], "load15": signal["host.load15"],
            "cpu_busy_percent": signal["host.cpu_busy_percent"],
            "cpus": np.broadcast_to(fleet.cpus[:, None], (hosts, n)),
            "memory_total_bytes": total, "memory_available_bytes": available,
            "libvirt_calls_per_second": signal["host.libvirt_calls_per_second"],
            "domains_running": running_count, "domains_defined": np.full((hosts, n), self.domains),
        }
        return self._host_level("host", state != STATE_UP, (HOST_FIELDS + HOST_COUNT_FIELDS, HOST_FIELDS),
                                (("cpus", "memory_total_bytes", "domains_defined"), ("cpus", "memory_total_bytes")),
                                columns)

    def _libvirtd_table(self, rng, times, state, latent, signal, proc, running_count) -> tuple[Table, np.ndarray]:
        fleet = self.sim.fleet
        hosts, n = state.shape
        hung = state == STATE_HUNG
        calls = signal["host.libvirt_calls_per_second"]
        clients = signal["libvirtd.clients"]
        queue = signal["libvirtd.job_queue_depth"].copy()
        hang_s = np.zeros((hosts, n))
        for h, history in enumerate(self.sim.histories):  # calls pile up behind stuck workers
            for start, end, kind in history.outages:
                if kind == STATE_HUNG and start < times[-1] and end > times[0]:
                    stuck_s = np.clip(times - start, 0, None) / 1e9
                    during = hung[h] & (times > start) & (times < end)
                    queue[h] = np.where(during, queue[h] + piled_calls(calls[h], stuck_s), queue[h])
                    # the hang's age counts from the probe that went unanswered, a deadline before hang_start
                    hang_s[h] = np.where(during, stuck_s + PROBE_DEADLINE_NS / 1e9, hang_s[h])
        workers_current = np.where(hung, MAX_WORKERS, signal["libvirtd.workers_current"])
        workers_free = np.where(hung, 0, signal["libvirtd.workers_free"])
        rss = (fleet.rss_base_bytes[:, None] + fleet.rss_growth_bytes_per_second[:, None] * proc["age_s"]
               + 2 * MIB * running_count + 3 * MIB * latent + proc["leak_rss"]
               + rng.normal(0.0, 0.4 * MIB, size=(hosts, n))).astype(np.int64)
        cpu_rate = (0.002 + 0.0015 * calls) * ~hung  # a stuck daemon burns little CPU
        increments = np.stack([0.6 * cpu_rate, 0.4 * cpu_rate], axis=1) * self.step_s  # (H, 2, n)
        resets = [((h,), step, increments[h, :, step] * min(proc["age_s"][h, step] / self.step_s, 1.0))
                  for h, step in proc["changes"]]
        cpu = _accumulate(increments, self.process_cpu, resets)
        self.process_cpu = cpu[..., -1].copy()
        background = rng.poisson(self.step_s * (0.0005 + 0.0002 * calls))
        log_errors = self.log_background[:, None] + np.cumsum(background, axis=1)
        self.log_background = log_errors[:, -1].copy()
        fds = 24 + 2 * clients + 2 * running_count + proc["leak_fds"].astype(np.int64)
        columns = {
            "up": (state != STATE_DOWN).astype(np.int64), "hung": hung.astype(np.int64),
            "probe_ok": (state == STATE_UP).astype(np.int64),
            "probe_outstanding_seconds": hang_s, "hang_seconds": hang_s,  # the probe waits as long as the hang
            "segfaults_total": proc["segfaults_total"],
            "log_errors_total": log_errors.astype(np.int64) + proc["log_errors"],
            "probe_latency_ms": np.where(hung, PROBE_TIMEOUT_MS, signal["libvirtd.probe_latency_ms"]),
            "pid": proc["pid"], "start_time_seconds": proc["start_ns"] / 1e9,
            "restarts_total": proc["restarts_total"], "rss_bytes": rss,
            "threads": workers_current + PRIO_WORKERS + OTHER_THREADS + running_count,
            "open_fds": np.minimum(fds, MAX_FDS), "max_fds": np.full((hosts, n), MAX_FDS),
            "cpu_user_seconds_total": cpu[:, 0], "cpu_system_seconds_total": cpu[:, 1],
            "workers_min": np.full((hosts, n), MIN_WORKERS), "workers_max": np.full((hosts, n), MAX_WORKERS),
            "workers_current": workers_current, "workers_free": workers_free,
            "workers_priority": np.full((hosts, n), PRIO_WORKERS), "job_queue_depth": queue,
            "clients": clients, "clients_max": np.full((hosts, n), MAX_CLIENTS),
        }
        states = ("up", "hung", "probe_ok")
        limits = ("max_fds", "workers_min", "workers_max", "workers_priority", "clients_max")
        everything = LIBVIRTD_ALWAYS + LIBVIRTD_PROCESS
        table = self._host_level(
            "libvirtd", state, (everything, everything, LIBVIRTD_ALWAYS),  # variants: up, hung, down
            (states + limits, states + limits + ("probe_latency_ms", "workers_current", "workers_free"), states),
            columns)
        return table, rss

    def _collector_table(self, rng, c0, c1, state, latent) -> Table:
        hosts, n = state.shape
        base = (8.0 + 1.5 * self.domains + 10.0 * latent) * rng.lognormal(0.0, 0.2, size=(hosts, n))
        scrape = np.select([state == STATE_HUNG, state == STATE_DOWN],
                           [PROBE_TIMEOUT_MS + base, 2.0 + 0.1 * base], base)
        written = 3 + self.domains * (state == STATE_UP)
        in_chunk = (self.event_steps >= c0) & (self.event_steps < c1)
        np.add.at(written, (self.event_hosts[in_chunk], self.event_steps[in_chunk] - c0), 1)
        total = self.written[:, None] + np.cumsum(written, axis=1) - written  # what was written before this point
        self.written = total[:, -1] + written[:, -1]
        overran = (state == STATE_HUNG) * max(1, round(self.step_s / AGENT_INTERVAL_SECONDS))
        overruns = self.overruns[:, None] + np.cumsum(overran, axis=1)
        self.overruns = overruns[:, -1].copy()
        zeros = np.zeros((hosts, n), dtype=np.int64)
        columns = {"scrape_duration_ms": scrape, "points_written_total": total, "libvirt_overruns_total": overruns,
                   "points_spooled_total": zeros, "points_replayed_total": zeros, "points_dropped_total": zeros,
                   "spool_bytes": zeros, "points_queued": zeros, "store_reachable": zeros + 1,
                   "stats_overruns_total": zeros, "daemon_overruns_total": zeros}
        return self._host_level("collector", None, (COLLECTOR_FIELDS,), (COLLECTOR_FIELDS[3:],), columns)

    def _host_level(self, measurement: str, variant: np.ndarray | None, fields: tuple, constants: tuple,
                    columns: dict) -> Table:
        """Return a table with one row per host and step from (H, n) columns."""
        hosts, n = next(iter(columns.values())).shape
        steps = np.repeat(np.arange(n), hosts)
        series = np.tile(np.arange(hosts), n)
        variants = np.zeros(n * hosts, dtype=np.int8) if variant is None else _step_major(variant).astype(np.int8)
        return Table(measurement, steps, series, variants, fields, constants,
                     {name: _step_major(np.asarray(col)) for name, col in columns.items()})


@dataclass
class _Guests:
    """A chunk's domain table and the guests' totals per host-step."""

    table: Table
    running_count: np.ndarray
    rss_sum: np.ndarray
