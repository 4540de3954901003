"""libvirt's event codes map to failure kinds; ordinary stops are not failures."""

import pytest

from collector.domain_events import io_error_event, lifecycle_event, watchdog_event
from tsdb.schema import EVENT_KINDS


@pytest.mark.parametrize("event, detail, kind", [
    (5, 5, "domain_failed"),    # STOPPED, FAILED: the QEMU process died
    (5, 2, "domain_crashed"),   # STOPPED, CRASHED
    (8, 0, "domain_crashed"),   # CRASHED, PANICKED
    (5, 0, None),               # STOPPED, SHUTDOWN: the guest shut down
    (5, 1, None),               # STOPPED, DESTROYED: an operator destroyed it
    (2, 0, None),               # STARTED
])
def test_only_failures_become_events(event, detail, kind):
    found = lifecycle_event('db "1"', event, detail, 7)
    assert (found.kind if found else None) == kind
    if found:
        assert found.kind in EVENT_KINDS and 'db "1"' in found.message and found.time_ns == 7


def test_io_errors_and_watchdogs_name_the_device_and_action():
    io = io_error_event("web", "vda", 1, "enospc", 1)
    assert io.kind == "domain_io_error" and "vda" in io.message and "enospc" in io.message and "pause" in io.message
    dog = watchdog_event("web", 2, 1)
    assert dog.kind == "domain_watchdog" and "reset" in dog.message
