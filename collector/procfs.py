"""Host load from /proc: pure parsers of the files' text, and a reader that takes the /proc root."""

from __future__ import annotations

import os
from dataclasses import dataclass


def parse_loadavg(text: str) -> dict[str, float]:
    """Return load1/load5/load15 from /proc/loadavg."""
    one, five, fifteen = text.split()[:3]
    return {"load1": float(one), "load5": float(five), "load15": float(fifteen)}


def parse_cpu_jiffies(text: str) -> tuple[int, int]:
    """Return (busy, total) jiffies of all CPUs from /proc/stat (idle and iowait count as not busy)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            total = sum(values[:8])  # guest time is already inside user and nice
            return total - idle, total
    raise ValueError("/proc/stat has no aggregate 'cpu' line")


def parse_meminfo(text: str) -> dict[str, int]:
    """Return memory_total_bytes and memory_available_bytes from /proc/meminfo."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return {"memory_total_bytes": values["MemTotal"], "memory_available_bytes": values["MemAvailable"]}


@dataclass
class HostLoad:
    """Reads the host's load; CPU busy percent is measured between two consecutive reads."""

    proc_root: str = "/proc"
    _last_cpu: tuple[int, int] | None = None

    def _read(self, name: str) -> str:
        with open(os.path.join(self.proc_root, name), encoding="ascii") as handle:
            return handle.read()

    def read(self) -> dict[str, float | int]:
        """Return the host measurement's load fields (cpu_busy_percent from the second read on)."""
        fields: dict[str, float | int] = {}
        fields.update(parse_loadavg(self._read("loadavg")))
        fields.update(parse_meminfo(self._read("meminfo")))
        fields["cpus"] = os.cpu_count() or 1
        busy, total = parse_cpu_jiffies(self._read("stat"))
        if self._last_cpu is not None and total > self._last_cpu[1]:
            fields["cpu_busy_percent"] = 100.0 * (busy - self._last_cpu[0]) / (total - self._last_cpu[1])
        self._last_cpu = (busy, total)
        return fields
