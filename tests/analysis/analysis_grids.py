"""Grids for the analysis tests: a known hazard built straight from arrays, and a simulation's own arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.exposure import Grid

STEP_SECONDS = 300


def ar1_rows(rng: np.random.Generator, hosts: int, steps: int, tau_steps: float) -> np.ndarray:
    """Return hosts x steps of stationary AR(1) noise (mean 0, deviation 1) with correlation time tau_steps."""
    phi = float(np.exp(-1 / tau_steps))
    out = np.empty((hosts, steps))
    x = rng.standard_normal(hosts)
    for t in range(steps):
        x = phi * x + np.sqrt(1 - phi * phi) * rng.standard_normal(hosts)
        out[:, t] = x
    return out


def failures_grid(values: dict[str, np.ndarray], failures: np.ndarray, step_seconds: int = STEP_SECONDS,
                  kinds=("restart",), hosts=None) -> Grid:
    """Return a Grid of the given hosts x steps signals and failure counts (one event row per failure)."""
    h, s = np.nonzero(failures)
    repeat = failures[h, s]
    h, s = np.repeat(h, repeat), np.repeat(s, repeat)
    events = pd.DataFrame({"host_index": h.astype("int64"), "step_index": s.astype("int64"),
                           "time_ns": s.astype("int64") * step_seconds * 10**9, "kind": kinds[0]})
    hosts = hosts or tuple(f"hv-{i:02d}" for i in range(failures.shape[0]))
    return Grid(0, step_seconds, tuple(hosts), values, failures, events, 0, tuple(kinds))


def hazard_grid(seed: int, factor: float = 1.0, hosts: int = 30, days: int = 14, rate_per_day: float = 0.5,
                threshold_quantile: float = 0.75) -> Grid:
    """Return a grid whose restarts are Poisson at rate * factor while the queue depth is >= its quantile.

    Three signals share a slow latent load (correlation time 2 h), as real load does: a queue depth (Poisson
    around the load: the planted one), a load average and a client count; a fourth, memory, is unrelated.
    """
    rng = np.random.default_rng(seed)
    steps = days * 86400 // STEP_SECONDS
    latent = ar1_rows(rng, hosts, steps, tau_steps=7200 / STEP_SECONDS)
    queue = rng.poisson(np.exp(latent)).astype("float64")
    values = {
        "libvirtd.job_queue_depth": queue,
        "host.load1": 2 + latent + rng.normal(0, 0.5, latent.shape),
        "libvirtd.clients": np.round(6 + 2 * latent + rng.normal(0, 1, latent.shape)),
        "libvirtd.rss_bytes": 2**27 + 2**20 * rng.standard_normal(latent.shape),
    }
    threshold = np.quantile(queue, threshold_quantile)
    rate = rate_per_day * STEP_SECONDS / 86400 * np.where(queue >= threshold, factor, 1.0)
    return failures_grid(values, rng.poisson(rate))


def simulation_grid(sim, kinds="restart") -> Grid:
    """Return the grid of a simulation's own arrays, as the store would give it at the simulation's step.

    The simulator's load signals (simulator.EFFECT_SIGNALS that are default signals, and busy workers); the
    daemon's figures are missing where it was down or hung, as the agent sends none then.
    """
    from analysis.exposure import grid_from_arrays

    exposed = sim.exposed
    names = ["host.load1", "host.libvirt_calls_per_second", "libvirtd.probe_latency_ms", "libvirtd.job_queue_depth",
             "libvirtd.clients"]
    values = {n: np.where(exposed, sim.signal(n), np.nan) if n.startswith("libvirtd.") else sim.signal(n)
              for n in names}
    busy = sim.signal("libvirtd.workers_current") - sim.signal("libvirtd.workers_free")
    values["libvirtd.workers_busy"] = np.where(exposed, busy, np.nan)
    events = pd.DataFrame({"time": pd.to_datetime(sim.failures["time_ns"].to_numpy(), unit="ns", utc=True),
                           "host": sim.failures["host"].to_numpy(), "kind": sim.failures["kind"].to_numpy()})
    return grid_from_arrays(sim.start_ns, sim.spec.step_seconds, sim.hosts, values, events, kinds)
