"""The hazard model (HAZARD_MODEL): thresholds of planted effects and the Poisson draws of failures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.signals import Signals
from simulator.spec import FAILURE_KINDS, Effect, FleetSpec

HAZARD_MODEL = """\
Hazard model
------------
Time is a grid of steps: step t of the span starts at T_t = end_ns - (steps - t) * step_seconds, so every
point and event lies in [end_ns - steps * step_seconds, end_ns). Each host writes one `host`, `libvirtd` and
`collector` point at every T_t, and one `domain` point per guest at every T_t where its daemon is up; its
events, and the `diagnosis` and `forensics` points that explain them (below), at their own instants.

Failures. For host h, failure kind k and step t the number of failures drawn is

    N(h, k, t) ~ Poisson(rate_k * step_days * prod_{effects e on kind k} (e.factor if s_e(h, t) >= thr_e else 1))

where rate_k is base_rate_per_day[k] (failures per host per day; a kind the mapping leaves out is never drawn),
step_days = step_seconds / 86400, s_e(h, t) is the value of e.signal written for host h at T_t, and thr_e =
Simulation.thresholds[e] is numpy's (linear) quantile e.threshold_quantile of e.signal over all hosts and
steps. Draws are independent across hosts, kinds and steps. Each failure happens at an instant drawn uniformly
in [T_t, T_t + 0.9 * step_seconds); its consequences show from the point at T_(t+1) on, so the point at T_t
carries the signal value that drove it. Signals are load signals simulated before any failure (the fields of
spec.EFFECT_SIGNALS): on a step where the daemon is up, the value written is the value the hazard saw.

Exposure. The agent sees nothing while its daemon is down or hung, so a failure drawn at a step whose point
shows the daemon down or hung (probe_ok = 0), or at an instant when it is down or hung, is absorbed: it leaves
no trace and is not in the truth. A domain kind also needs a running guest (the failing guest is drawn
uniformly among them), and with incidents on, draws at steps inside an incident's window on its host are
absorbed too. Hence the rate of kind k per exposed host-step (Simulation.exposed: probe_ok = 1 and outside
incident windows) is exactly rate_k * step_days * (factor above the threshold, 1 below), except that a
failure which takes the daemon away (hang_start, daemon_down, segfault) absorbs the draws later in its own
step, and a guest kind finds no running guest: both rare at the default rates.

Truth. Simulation.failures lists every failure event written, one row each: time_ns, host, kind, domain ("" for
daemon kinds), step, and cause: "hazard" for a draw, the incident's name for a scripted failure, or "segfault"
/ "daemon_down" for the restart that follows one of those. Simulation.events lists every event point (the
failures plus hang_end and daemon_up). Everything is a function of the spec: pass end_ns to reproduce a run.

Consequences, as the agent reports them (events carry tags host, kind, severity from EVENT_KINDS, domain for
guest kinds, and fields message, count = 1, duration_seconds on ending kinds):
- restart: a new daemon process: pid and start_time_seconds change, restarts_total counts one more, and the
  process figures start again (rss_bytes, open_fds and the CPU seconds fall back to a fresh daemon's).
- segfault: segfaults_total counts one more, and systemd restarts the daemon a few seconds later: a `restart`
  event (cause "segfault") before the next point.
- hang_start: from the next point, up = 1, hung = 1, probe_ok = 0, probe_latency_ms = the probe timeout
  (5000 ms), no free workers and a growing job queue, and no domain points; it lasts at least one step, then
  `hang_end` with duration_seconds (none when it runs past the end of the span). The hang began with the probe
  the agent sent a deadline (5 s) before hang_start: hang_seconds, probe_outstanding_seconds and duration_seconds
  count from there. Its cause (Simulation.histories[h].hangs): the scripted hang's workers all wait on a guest
  whose QEMU is stopped; a drawn one's on a guest stopped (40%) or stuck on its storage (25%), or the daemon's
  own threads block on storage (20%), or the daemon is stopped (15%). Waiting on a guest, the 19 waiting
  workers each log a job-lock timeout every 30 s (log_errors_total).
- daemon_down: up = 0, hung = 0, probe_ok = 0 and no process, pool or domain figures for at least one step, then
  `daemon_up` with duration_seconds and a `restart` (cause "daemon_down"): systemd started a new process.
- keepalive_timeout: the event only (the agent reconnects at once).
- domain_failed / domain_crashed: that guest's state_code becomes 5 (shut off) with state_reason_code 6
  (failed) or 3 (crashed) and it keeps only its definition's figures, until restarted about 10 to 60 minutes
  later with new counters (a new QEMU process).
- domain_io_error: that guest's block_errors_total counts one more. domain_watchdog: the event only.
- a daemon leaks slowly (rss_bytes grows with its age); the scripted leak makes rss_bytes and open_fds climb
  over days towards max_fds until a restart (cause "leak") resets them.
- threads is the workers, the priority workers, 6 others and one event loop thread per running guest.

Diagnoses, as the agent writes them (simulator.diagnoses): the message of every hang_start, segfault and
restart event is its cause sentence, worded by the agent's own collector.diagnosis, and a `diagnosis` point
(tag trigger = the event's kind) goes with it; every hung point has a `diagnosis` point (trigger hang) with
the same hang_seconds, threads and pool figures, naming the stuck guest's job holder from 30 s into the hang.
A `forensics` point holds a bundle (tsdb.forensics) of each incident: a hang 10 s in, a segfault (the kernel's
line, the crashed process's thread names), a restart that no segfault caused; at most one per host in 300 s
(a hang held back is captured when the gap has passed).

Signals. A host's latent load is its busyness (some hosts busy, some quiet) times a working-hours cycle in its
own time zone (weekends quieter) times AR(1) noise. libvirt_calls_per_second rises with it; busy workers are
calls/s times a service time that grows with load; job_queue_depth fills as they near max_workers (20);
probe_latency_ms rises with the queue; cpu_busy_percent with load; load1/5/15 are exponential averages of the
run queue. workers_current grows ahead of demand, workers_free is what demand leaves of it, and clients rise
with load. An effect is planted on exactly the signal it names: correlated signals show a weaker effect.

Incidents (incidents=True, the demo's story; they need days >= 2): "leak" (a mid-load host's daemon leaks
memory and fds for 3 days, or 30% of a shorter span, and is restarted), "segfault_storm" (5 segfaults, each followed by a restart, within an hour on the
busiest host during its working hours), "hang" (a 25-minute hang on the second busiest host, with a
keepalive_timeout), "guest_failures" (5 guests failing within 8 minutes on the third busiest host).
"""

#: a failure's instant lies in the first 90% of its step, so the restart after a segfault precedes the next point
INSTANT_SPAN = 0.9


@dataclass
class Draws:
    """Failures drawn by the hazard: one entry per failure, sorted by host then time."""

    host: np.ndarray     # host index
    step: np.ndarray     # step index
    time_ns: np.ndarray  # the instant
    kind: np.ndarray     # index into FAILURE_KINDS


def resolve_thresholds(effects: tuple[Effect, ...], signals: Signals) -> dict[Effect, float]:
    """Return each effect's threshold: the quantile of its signal over all hosts' steps."""
    thresholds = {}
    for i, effect in enumerate(effects):
        values = signals.values[effect.signal]
        threshold = float(np.quantile(values, effect.threshold_quantile))
        if not (values < threshold).any():
            raise ValueError(f"FleetSpec.effects[{i}]: threshold_quantile {effect.threshold_quantile} of "
                             f"{effect.signal} resolves to {threshold:g}, its smallest value, so no step lies "
                             f"below the threshold; raise threshold_quantile")
        thresholds[effect] = threshold
    return thresholds


def hazard_factor(kind: str, effects: tuple[Effect, ...], thresholds: dict[Effect, float],
                  signals: Signals) -> np.ndarray | float:
    """Return the product of the factors of the effects on `kind` that apply at each host-step (H, N)."""
    factor: np.ndarray | float = 1.0
    for effect in effects:
        if effect.kind == kind and effect.factor != 1.0:
            above = signals.values[effect.signal] >= thresholds[effect]
            factor = factor * np.where(above, effect.factor, 1.0)
    return factor


def draw_failures(spec: FleetSpec, signals: Signals, thresholds: dict[Effect, float], start_ns: int) -> Draws:
    """Draw every failure of the hazard model, one independent random stream per kind."""
    step_ns = spec.step_seconds * 10**9
    step_days = spec.step_seconds / 86400.0
    hosts, steps, times, kinds = [], [], [], []
    shape = signals.latent.shape
    for k, kind in enumerate(FAILURE_KINDS):
        rate = spec.base_rate_per_day.get(kind, 0.0)
        if rate == 0.0:
            continue
        counts_rng = np.random.default_rng([spec.seed, 3, k])
        instants_rng = np.random.default_rng([spec.seed, 4, k])
        expected = rate * step_days * hazard_factor(kind, spec.effects, thresholds, signals)
        counts = counts_rng.poisson(np.broadcast_to(expected, shape))
        h, t = np.nonzero(counts)
        repeat = counts[h, t]
        h, t = np.repeat(h, repeat), np.repeat(t, repeat)
        offsets_us = np.floor(instants_rng.random(len(h)) * INSTANT_SPAN * spec.step_seconds * 1e6).astype(np.int64)
        hosts.append(h)
        steps.append(t)
        times.append(start_ns + t.astype(np.int64) * step_ns + offsets_us * 1000)
        kinds.append(np.full(len(h), k))
    if not hosts:
        empty = np.zeros(0, dtype=np.int64)
        return Draws(empty, empty, empty, empty)
    host, step, time_ns, kind = (np.concatenate(a) for a in (hosts, steps, times, kinds))
    order = np.lexsort((kind, time_ns, host))
    return Draws(host[order], step[order], time_ns[order], kind[order])
