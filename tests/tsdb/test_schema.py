"""The schema is the contract: docs/metrics.md is generated from it and names follow the unit convention."""

from pathlib import Path

from tsdb import schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
UNITLESS = {"state_code", "state_reason_code", "stats_partial", "vcpus", "vcpus_max", "up", "hung", "probe_ok",
            "pid", "threads", "open_fds", "max_fds", "workers_min", "workers_max", "workers_current",
            "workers_free", "workers_priority", "job_queue_depth", "clients", "clients_max", "load1", "load5",
            "load15", "cpus", "domains_running", "domains_defined", "message", "count",
            "domain_points", "wedged_points",
            "status", "fingerprint", "summary", "description", "silenced",
            "burn_long", "burn_short", "factor", "firing", "points_queued", "store_reachable",
            # diagnosis: counts, flags and words
            "cause", "process_state", "threads_running", "threads_disk_wait", "threads_stopped",
            "threads_not_sleeping", "workers_busy", "clients_listed", "top_client", "top_client_connections",
            "agent_connections", "clients_by_process", "job_domain", "job_waiting_api", "job_holder_api",
            "job_holder_thread", "job_held_by_agent", "stuck_guests", "stuck_guest_names_json",
            # forensics
            "bundle", "encoding", "steps_cut", "file",
            # the engine's leak records: flags and words
            "fd_leak", "rss_leak", "leak_sign", "leak_detail"}
UNIT_SUFFIXES = ("_bytes", "_seconds", "_ms", "_percent", "_total", "_per_second")


def test_docs_metrics_md_is_generated_from_the_schema():
    assert DOC.read_text() == schema.render_metrics_doc(), "run: python -m tsdb.schema > docs/metrics.md"


def test_every_field_names_its_unit_or_is_a_known_count_or_flag():
    for measurement in schema.MEASUREMENTS.values():
        for field in measurement.fields:
            assert field.type in schema.FIELD_TYPES
            assert field.name in UNITLESS or field.name.endswith(UNIT_SUFFIXES), f"{measurement.name}.{field.name}"


def test_every_measurement_is_tagged_by_host_but_the_fleets_own_and_names_are_unique():
    for measurement in schema.MEASUREMENTS.values():
        assert (measurement.tags[0].name == "host") != measurement.name.endswith("_fleet"), measurement.name
        names = [f.name for f in measurement.fields] + [t.name for t in measurement.tags]
        assert len(names) == len(set(names))


def test_event_kinds_have_a_known_severity():
    assert {k.severity for k in schema.EVENT_KINDS.values()} <= set(schema.SEVERITIES)
