"""Map libvirt domain events to virtwatch event kinds (pure functions of the event codes).

Codes are libvirt's (include/libvirt/libvirt-domain.h): lifecycle STOPPED=5 with detail FAILED=5 (the QEMU
process died) or CRASHED=2, lifecycle CRASHED=8, and the IO_ERROR_REASON and WATCHDOG event ids.
"""

from __future__ import annotations

from dataclasses import dataclass

LIFECYCLE_STOPPED, LIFECYCLE_CRASHED = 5, 8
STOPPED_CRASHED, STOPPED_FAILED = 2, 5
IO_ERROR_ACTIONS = {0: "none", 1: "pause", 2: "report"}
WATCHDOG_ACTIONS = {0: "none", 1: "pause", 2: "reset", 3: "poweroff", 4: "shutdown", 5: "debug", 6: "inject-nmi"}
CLOSE_REASONS = {0: "error", 1: "eof", 2: "keepalive", 3: "client"}


@dataclass(frozen=True)
class DomainEvent:
    """A domain event worth reporting: its kind (tsdb.schema.EVENT_KINDS), the domain, a message, when."""

    kind: str
    domain: str
    message: str
    time_ns: int


def lifecycle_event(domain: str, event: int, detail: int, time_ns: int) -> DomainEvent | None:
    """Return the event for a lifecycle change that is a failure, or None for an ordinary one."""
    if event == LIFECYCLE_STOPPED and detail == STOPPED_FAILED:
        return DomainEvent("domain_failed", domain, f"domain {domain!r} stopped with reason failed "
                           "(its QEMU process exited unexpectedly)", time_ns)
    if event == LIFECYCLE_STOPPED and detail == STOPPED_CRASHED:
        return DomainEvent("domain_crashed", domain, f"domain {domain!r} stopped: the guest crashed", time_ns)
    if event == LIFECYCLE_CRASHED:
        how = {0: "panicked", 1: "crashed and loaded a crash kernel"}.get(detail, "crashed")
        return DomainEvent("domain_crashed", domain, f"domain {domain!r} {how}", time_ns)
    return None


def io_error_event(domain: str, device: str, action: int, reason: str, time_ns: int) -> DomainEvent:
    """Return the event for a disk I/O error."""
    what = IO_ERROR_ACTIONS.get(action, str(action))
    return DomainEvent("domain_io_error", domain, f"domain {domain!r} disk {device!r}: I/O error "
                       f"({reason or 'no reason given'}); action {what}", time_ns)


def watchdog_event(domain: str, action: int, time_ns: int) -> DomainEvent:
    """Return the event for a fired guest watchdog."""
    return DomainEvent("domain_watchdog", domain, f"domain {domain!r}: watchdog fired; action "
                       f"{WATCHDOG_ACTIONS.get(action, str(action))}", time_ns)
