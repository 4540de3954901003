"""The load signals of every host at every step: a daily cycle, the host's busyness, AR(1) noise, correlations.

Each host has a latent load: its busyness times a working-hours cycle in its own time zone (weekends quieter),
times slow AR(1) noise. The signals an Effect may name (spec.EFFECT_SIGNALS) follow from it, correlated the way
a loaded libvirtd is: calls/s rise with load; busy workers are calls/s times a service time that grows with
load (Little's law); the job queue fills as busy workers near the pool's maximum; probe latency rises with the
queue; load averages are the kernel's exponential averages of the run queue over 1, 5 and 15 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.fleet import MAX_WORKERS, MIN_WORKERS, Fleet

#: block length cap of the recurrence: a**-k stays below e**20, so prefix sums keep their precision
_BLOCK_DECAY = 20.0


def recurrence(inputs: np.ndarray, a: float, before: np.ndarray) -> np.ndarray:
    """Return y with y[:, t] = a * y[:, t - 1] + inputs[:, t], where y[:, -1] is `before` (vectorised in blocks)."""
    out = np.empty_like(inputs, dtype=np.float64)
    steps = inputs.shape[1]
    if a <= 0.0:
        out[:] = inputs
        return out
    block = steps if a >= 1.0 else max(1, min(steps, int(_BLOCK_DECAY / -np.log(a))))
    powers = a ** np.arange(1, block + 1, dtype=np.float64)   # a**(k+1) for k = 0..block-1
    inverse = a ** -np.arange(0, block, dtype=np.float64)     # a**-k
    previous = np.asarray(before, dtype=np.float64)
    for b0 in range(0, steps, block):
        u = inputs[:, b0:b0 + block]
        k = u.shape[1]
        # y[k] = a**(k+1) * y_prev + a**k * sum_{j<=k} u[j] * a**-j
        sums = np.cumsum(u * inverse[:k], axis=1)
        out[:, b0:b0 + k] = powers[:k] * previous[:, None] + sums * (powers[:k] / a)
        previous = out[:, b0 + k - 1]
    return out


def ar1(rng: np.random.Generator, shape: tuple[int, int], tau_seconds: float, sigma: float,
        step_seconds: float) -> np.ndarray:
    """Return stationary AR(1) noise, mean 0 and deviation `sigma`, with correlation time `tau_seconds`."""
    phi = float(np.exp(-step_seconds / tau_seconds))
    shocks = rng.standard_normal(shape) * (sigma * np.sqrt(1.0 - phi * phi))
    return recurrence(shocks, phi, rng.standard_normal(shape[0]) * sigma)


def ewma(values: np.ndarray, tau_seconds: float, step_seconds: float) -> np.ndarray:
    """Return the exponential moving average of each row (the kernel's load average), started at its first value."""
    a = float(np.exp(-step_seconds / tau_seconds))
    return recurrence(values * (1.0 - a), a, values[:, 0])


def working_hours(local_hours: np.ndarray) -> np.ndarray:
    """Return 0..1: how busy a local hour is (ramps up from 7:30, down after 18:30, a dip at lunch)."""
    rise = 1.0 / (1.0 + np.exp(-(local_hours - 8.0) / 0.8))
    fall = 1.0 / (1.0 + np.exp((local_hours - 18.5) / 1.0))
    lunch = 1.0 - 0.15 * np.exp(-0.5 * ((local_hours - 12.5) / 0.6) ** 2)
    return rise * fall * lunch


@dataclass
class Signals:
    """The latent load (H, N) and every effect-able signal as (H, N) arrays keyed "measurement.field"."""

    latent: np.ndarray
    values: dict[str, np.ndarray]


def simulate_signals(fleet: Fleet, start_ns: int, steps: int, step_seconds: int,
                     rng: np.random.Generator) -> Signals:
    """Return every host's load signals over the span (deterministic for the generator's seed)."""
    hosts = len(fleet.names)
    shape = (hosts, steps)
    seconds = start_ns / 1e9 + step_seconds * np.arange(steps, dtype=np.float64)
    local = seconds[None, :] + fleet.zone_hours[:, None] * 3600.0
    local_hours = (local / 3600.0) % 24.0
    weekday = (np.floor(local / 86400.0).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    cycle = working_hours(local_hours) * np.where(weekday >= 5, 0.35, 1.0)
    noise = ar1(rng, shape, 2400.0, 0.25, step_seconds)
    latent = fleet.busyness[:, None] * (0.15 + 0.85 * cycle) * np.exp(noise - 0.25**2 / 2)

    domains = fleet.domains
    calls = (2.0 + 1.5 * domains) * (0.2 + 2.5 * latent) * np.exp(ar1(rng, shape, 600.0, 0.15, step_seconds))
    busy_cpu = 0.03 + 0.9 * (1.0 - np.exp(-1.3 * latent)) * np.exp(ar1(rng, shape, 300.0, 0.08, step_seconds))
    cpu_busy_percent = 100.0 * np.clip(busy_cpu, 0.005, 0.995)
    run_queue = fleet.cpus[:, None] * (cpu_busy_percent / 100.0) * (1.0 + 0.6 * np.maximum(latent - 0.8, 0.0))
    run_queue *= np.exp(rng.normal(0.0, 0.12, size=shape))

    # Little's law: busy workers are calls/s times seconds per call, and a call takes longer on a loaded host
    busy_workers = calls * 0.1 * (1.0 + 2.0 * np.minimum(latent, 1.5) ** 2)
    demand = rng.poisson(busy_workers)
    spare = MIN_WORKERS + rng.poisson(0.6 + 1.2 * busy_workers)  # the pool grows ahead of demand
    workers_current = np.clip(np.maximum(spare, demand), MIN_WORKERS, MAX_WORKERS)
    workers_free = workers_current - np.minimum(demand, workers_current)
    pressure = busy_workers / MAX_WORKERS
    queue = np.maximum(demand - MAX_WORKERS, 0) + rng.poisson(0.3 + 12.0 * pressure**2)
    clients = 3 + rng.poisson(1.0 + 4.0 * latent)
    probe_ms = ((4.0 + 0.6 * domains) * (1.0 + 0.35 * queue) * (1.0 + 0.5 * latent)
                * np.exp(rng.normal(0.0, 0.25, size=shape)))

    values = {
        "host.load1": ewma(run_queue, 60.0, step_seconds),
        "host.load5": ewma(run_queue, 300.0, step_seconds),
        "host.load15": ewma(run_queue, 900.0, step_seconds),
        "host.cpu_busy_percent": cpu_busy_percent,
        "host.libvirt_calls_per_second": calls,
        "libvirtd.job_queue_depth": queue.astype(np.int64),
        "libvirtd.workers_current": workers_current.astype(np.int64),
        "libvirtd.workers_free": workers_free.astype(np.int64),
        "libvirtd.clients": clients.astype(np.int64),
        "libvirtd.probe_latency_ms": probe_ms,
    }
    return Signals(latent=latent, values=values)
