"""A getAllDomainStats record becomes the schema's domain fields, in the schema's units."""

from collector.domain_stats import domain_fields
from tsdb.schema import MEASUREMENTS

#: the shape of a record from a running QEMU guest (libvirt 9.0), trimmed
QEMU_RECORD = {
    "state.state": 1, "state.reason": 1,
    "cpu.time": 2_500_000_000, "cpu.user": 1_000_000_000, "cpu.system": 500_000_000,
    "balloon.current": 65536, "balloon.maximum": 65536, "balloon.rss": 40000,
    "vcpu.current": 1, "vcpu.maximum": 2,
    "net.count": 2, "net.0.name": "vnet0", "net.0.rx.bytes": 100, "net.0.tx.bytes": 50, "net.0.rx.errs": 1,
    "net.1.rx.bytes": 10, "net.1.tx.drop": 3,
    "block.count": 1, "block.0.name": "vda", "block.0.rd.bytes": 4096, "block.0.rd.reqs": 1, "block.0.wr.reqs": 7, "block.0.errors": 2,
}


def test_a_full_record_maps_to_fields_in_bytes_and_seconds():
    fields = domain_fields(QEMU_RECORD)
    assert fields["state_code"] == 1 and fields["state_reason_code"] == 1
    assert fields["cpu_time_seconds_total"] == 2.5
    assert fields["memory_max_bytes"] == 65536 * 1024 and fields["memory_rss_bytes"] == 40000 * 1024
    assert fields["vcpus"] == 1 and fields["vcpus_max"] == 2
    assert fields["net_rx_bytes_total"] == 110 and fields["net_tx_drops_total"] == 3
    assert fields["block_read_bytes_total"] == 4096 and fields["block_errors_total"] == 2


def test_a_state_only_record_gives_only_the_state():
    assert domain_fields({"state.state": 5, "state.reason": 1}) == {"state_code": 5, "state_reason_code": 1}


def test_every_field_produced_is_in_the_schema():
    known = {f.name for f in MEASUREMENTS["domain"].fields}
    assert set(domain_fields(QEMU_RECORD)) <= known


def test_a_running_guest_missing_its_job_bound_stats_is_partial():
    wedged = {k: v for k, v in QEMU_RECORD.items() if k not in ("balloon.rss",) and not k.startswith("block.0.")}
    assert domain_fields(wedged)["stats_partial"] == 1
    assert domain_fields(QEMU_RECORD)["stats_partial"] == 0


def test_a_record_that_cannot_tell_leaves_stats_partial_out():
    assert "stats_partial" not in domain_fields({"state.state": 1, "state.reason": 0})  # the test driver
    assert "stats_partial" not in domain_fields({"state.state": 5, "balloon.current": 1})  # shut off
