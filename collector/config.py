"""[agent]: the per-host collector, as the config file says it (virtwatch.config reads it; virtwatch.wiring
builds the agent from it)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from tsdb.config_keys import (DAY_SECONDS, MIB, TIB, count, data_dir, key, listen, not_empty, redacted_repr,
                              seconds, within)

KEEPALIVE_COUNT_MAX = 1000  # a dead connection is closed after interval * (count + 1) s: within a C int


def _metadata_tags(value: dict) -> str | None:
    """Check [agent.metadata_tags]: tag name -> "NAMESPACE-URI PATH/TO/ELEMENT"."""
    for tag, spec in value.items():
        if "\x00" in tag or (isinstance(spec, str) and "\x00" in spec):
            return f"tag {tag!r}: must not contain a NUL character"
        if tag in ("host", "domain", "time") or not tag:
            return f"tag {tag!r}: host, domain and time are taken"
        if not isinstance(spec, str) or len(spec.split()) != 2 or "://" not in spec.split()[0]:
            return (f"tag {tag!r}: expected \"NAMESPACE-URI PATH\", e.g. "
                    "\"http://openstack.org/xmlns/libvirt/nova/1.1 owner/project\"")
    return None


@dataclass(frozen=True, repr=False)
class AgentConfig:
    """[agent]: the per-host collector."""

    libvirt_uri: str = key("qemu:///system", kind=str, check=not_empty)
    libvirt_read_only: bool = key(False, kind=bool)
    host_name: str = key(kind=str, check=not_empty, factory=socket.gethostname)
    interval_seconds: float = key(10.0, kind=float, check=seconds)
    probe_timeout_seconds: float = key(5.0, kind=float, check=seconds)
    keepalive_interval_seconds: int = key(5, kind=int, check=within(1, int(DAY_SECONDS), " seconds (at most a day)"))
    keepalive_count: int = key(5, kind=int, check=within(0, KEEPALIVE_COUNT_MAX))
    admin_uri: str | None = key(None, kind=str, check=not_empty)
    daemon_pidfile: Path = key(kind=Path, factory=lambda: Path("/run/libvirtd.pid"))
    daemon_log_file: Path | None = key(None, kind=Path)
    qemu_pid_dir: Path = key(kind=Path, factory=lambda: Path("/run/libvirt/qemu"))
    hang_end_probes: int = key(2, kind=int, check=within(1, 1000))
    forensics_dir: Path = key(kind=Path, factory=lambda: data_dir() / "forensics")
    forensics_after_hang_seconds: float = key(10.0, kind=float, check=seconds)
    forensics_min_gap_seconds: float = key(300.0, kind=float,
                                           check=within(0, DAY_SECONDS, " seconds (at most a day)"))
    forensics_step_deadline_seconds: float = key(2.0, kind=float, check=seconds)
    forensics_keep_files: int = key(200, kind=int, check=count)
    forensics_gdb: bool = key(False, kind=bool)
    spool_dir: Path = key(kind=Path, factory=lambda: data_dir() / "spool")
    spool_max_bytes: int = key(256 * MIB, kind=int, check=within(1, TIB, " bytes (at most 1 TiB)"))
    metrics_listen: str | None = key(None, kind=str, check=listen)
    metadata_tags: dict = key(kind=dict, check=_metadata_tags, factory=dict)
    __repr__ = redacted_repr
