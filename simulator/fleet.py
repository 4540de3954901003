"""The fleet's fixed facts: each host's zone, busyness and size, its daemon's first process, its guests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.spec import FleetSpec

GIB = 2**30
MIB = 2**20
#: hosts' UTC offsets in hours, round-robin: most of the fleet in one region, some in two others
ZONE_HOURS = (1, 1, 1, -5, -5, 8)
#: libvirtd.conf defaults (libvirt src/remote/libvirtd.conf.in): min_workers, max_workers, prio_workers,
#: max_clients
MIN_WORKERS, MAX_WORKERS, PRIO_WORKERS, MAX_CLIENTS = 5, 20, 5, 5000
#: LimitNOFILE in libvirt's libvirtd.service (src/remote/libvirtd.service.in)
MAX_FDS = 8192
#: the agent's probe deadline (collector.config `probe_timeout_seconds` default)
PROBE_TIMEOUT_MS = 5000.0
VCPU_CHOICES = np.array([1, 2, 4, 8])
VCPU_WEIGHTS = np.array([0.2, 0.35, 0.3, 0.15])


@dataclass
class Fleet:
    """Per-host arrays (H,) and per-guest arrays (H, D) that do not change over the span."""

    names: list[str]
    zone_hours: np.ndarray
    busyness: np.ndarray            # 0.1 (quiet) .. 1.1 (busy): scales the host's load
    cpus: np.ndarray
    memory_total_bytes: np.ndarray
    first_pid: np.ndarray
    first_start_ns: np.ndarray      # the daemon process running when the span starts began before it
    rss_base_bytes: np.ndarray
    rss_growth_bytes_per_second: np.ndarray  # the slow, ordinary growth of a long-lived daemon
    domain_names: list[list[str]]
    vcpus: np.ndarray
    memory_max_bytes: np.ndarray
    rss_fraction: np.ndarray        # guest RSS over its memory
    weight: np.ndarray              # how much of its host's load a guest carries (CPU utilisation at load 1)
    boot_ns: np.ndarray             # when each guest's QEMU process started, before the span
    io_bytes_per_second: np.ndarray  # (H, D, 4): block read, block write, net rx, net tx at full utilisation

    @property
    def domains(self) -> int:
        """Return the number of guests per host."""
        return self.vcpus.shape[1]


def make_fleet(spec: FleetSpec, start_ns: int, rng: np.random.Generator) -> Fleet:
    """Draw a fleet's fixed facts for a spec (deterministic for the generator's seed)."""
    hosts, domains = spec.hosts, spec.domains_per_host
    rank = rng.permutation(hosts)
    busyness = 0.12 + 0.98 * ((rank + 0.5) / hosts) ** 1.3
    zone_hours = np.array([ZONE_HOURS[i % len(ZONE_HOURS)] for i in range(hosts)], dtype=np.float64)
    vcpus = rng.choice(VCPU_CHOICES, size=(hosts, domains), p=VCPU_WEIGHTS)
    memory_max = vcpus * rng.choice([2, 4], size=(hosts, domains)) * GIB
    # a host big enough for its guests: CPUs overcommitted at most 3:1, memory with room to spare
    cpus = np.maximum(rng.choice([32, 48, 64, 96], size=hosts), -(-vcpus.sum(axis=1) // 24) * 8)
    memory_total = (-(-(memory_max.sum(axis=1) * 1.3 + 16 * GIB) // (128 * GIB)) * 128 * GIB).astype(np.int64)
    base = rng.integers(0x100, 0x4000)
    domain_names = [[f"instance-{base + h * domains + d:08x}" for d in range(domains)] for h in range(hosts)]
    day_ns = 86400 * 10**9
    return Fleet(
        names=spec.host_names(),
        zone_hours=zone_hours,
        busyness=busyness,
        cpus=cpus.astype(np.int64),
        memory_total_bytes=memory_total,
        first_pid=rng.integers(1200, 9000, size=hosts),
        first_start_ns=start_ns - (rng.uniform(0.5, 40, size=hosts) * day_ns).astype(np.int64),
        rss_base_bytes=rng.uniform(28, 45, size=hosts) * MIB,
        rss_growth_bytes_per_second=rng.uniform(0.5, 4, size=hosts) * MIB / 86400,
        domain_names=domain_names,
        vcpus=vcpus.astype(np.int64),
        memory_max_bytes=memory_max.astype(np.int64),
        rss_fraction=rng.uniform(0.35, 0.92, size=(hosts, domains)),
        weight=rng.uniform(0.15, 0.95, size=(hosts, domains)),
        boot_ns=start_ns - (rng.uniform(0.2, 60, size=(hosts, domains)) * day_ns).astype(np.int64),
        io_bytes_per_second=rng.lognormal(np.log([2e6, 1e6, 3e6, 2e6]), 0.8, size=(hosts, domains, 4)),
    )
