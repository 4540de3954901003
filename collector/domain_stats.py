"""Turn one domain's getAllDomainStats record into the `domain` fields of tsdb.schema (a pure function)."""

from __future__ import annotations

KIB = 1024
NS_PER_SECOND = 1e9

#: record key -> (field, scale); balloon figures are KiB, CPU times ns (libvirt-domain.h, VIR_DOMAIN_STATS_*)
_SCALARS = {
    "state.state": ("state_code", None),
    "state.reason": ("state_reason_code", None),
    "cpu.time": ("cpu_time_seconds_total", NS_PER_SECOND),
    "cpu.user": ("cpu_user_seconds_total", NS_PER_SECOND),
    "cpu.system": ("cpu_system_seconds_total", NS_PER_SECOND),
    "vcpu.current": ("vcpus", None),
    "vcpu.maximum": ("vcpus_max", None),
    "balloon.maximum": ("memory_max_bytes", KIB),
    "balloon.current": ("memory_current_bytes", KIB),
    "balloon.rss": ("memory_rss_bytes", KIB),
    "balloon.available": ("memory_available_bytes", KIB),
    "balloon.unused": ("memory_unused_bytes", KIB),
}
#: per-device counters summed over `block.<n>.*` and `net.<n>.*`
_BLOCK_SUMS = {"rd.bytes": "block_read_bytes_total", "wr.bytes": "block_write_bytes_total",
               "rd.reqs": "block_read_requests_total", "wr.reqs": "block_write_requests_total",
               "errors": "block_errors_total"}
_NET_SUMS = {"rx.bytes": "net_rx_bytes_total", "tx.bytes": "net_tx_bytes_total",
             "rx.pkts": "net_rx_packets_total", "tx.pkts": "net_tx_packets_total",
             "rx.errs": "net_rx_errors_total", "tx.errs": "net_tx_errors_total",
             "rx.drop": "net_rx_drops_total", "tx.drop": "net_tx_drops_total"}


def _device_sums(record: dict, group: str, sums: dict[str, str]) -> dict[str, int]:
    count = record.get(f"{group}.count")
    if not isinstance(count, int):
        return {}
    totals: dict[str, int] = {}
    for index in range(count):
        for suffix, field in sums.items():
            value = record.get(f"{group}.{index}.{suffix}")
            if isinstance(value, int) and value >= 0:
                totals[field] = totals.get(field, 0) + value
    return totals


def domain_fields(record: dict) -> dict[str, int | float]:
    """Return the schema's domain fields present in one stats record (absent groups give no field)."""
    fields: dict[str, int | float] = {}
    for key, (field, scale) in _SCALARS.items():
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            fields[field] = value / scale if scale == NS_PER_SECOND else value * (scale or 1)
    fields.update(_device_sums(record, "block", _BLOCK_SUMS))
    fields.update(_device_sums(record, "net", _NET_SUMS))
    partial = stats_partial(record)
    if partial is not None:
        fields["stats_partial"] = partial
    return fields


def stats_partial(record: dict) -> int | None:
    """Return 1 when NOWAIT skipped this active domain's job-bound stats (its job lock is held), 0 when it did
    not, None when the record cannot tell (no balloon or block group, e.g. the test driver).

    libvirt's qemu driver (src/qemu/qemu_driver.c, qemuDomainGetStatsBalloon/Block) fills balloon.current and
    block.count from the definition, but balloon.rss and block.<n>.rd.* only when it got the domain's job;
    with NOWAIT and the lock held it skips them (measured: a SIGSTOPped guest loses exactly these).
    """
    if record.get("state.state") not in (1, 3):  # running or paused: inactive domains have no job-bound stats
        return None
    has_balloon, has_block = "balloon.current" in record, isinstance(record.get("block.count"), int)
    if not has_balloon and not (has_block and record["block.count"] > 0):
        return None
    missing_balloon = has_balloon and "balloon.rss" not in record
    missing_block = has_block and record["block.count"] > 0 and "block.0.rd.reqs" not in record
    return int(missing_balloon or missing_block)
