"""Event-kind groups, labels and nouns live on the event kinds in tsdb/schema.py, and nowhere else."""

import ast
from pathlib import Path

from tsdb import schema

ROOT = Path(__file__).resolve().parents[2]
#: the folders of the source tree scanned for copies of the groups (tests spell the kinds they expect)
SOURCE_DIRS = ("tsdb", "collector", "alerts", "analysis", "dashboard", "simulator", "virtwatch", "benchmarks",
               "scripts", "deploy")
#: literals that spell kinds' names but are not event kinds: (module, the literal) -> why
NOT_EVENT_KINDS = {
    ("collector/diagnosis.py", ("segfault", "restart")): "diagnosis triggers (a crash), not event kinds",
    ("alerts/event_rules.py", ("segfault", "restart")): "diagnosis triggers that explain a down daemon",
}


def test_the_groups_partition_the_event_kinds_and_each_set_is_its_group():
    assert {kind.group for kind in schema.EVENT_KINDS.values()} == set(schema.EVENT_GROUPS)
    grouped = [k for group in schema.EVENT_GROUPS for k in schema.kinds_of(group)]
    assert sorted(grouped) == sorted(schema.EVENT_KINDS)
    assert schema.DAEMON_FAILURE_KINDS == schema.kinds_of("daemon_failure")
    assert schema.RECOVERY_KINDS == schema.kinds_of("recovery")
    assert schema.GUEST_FAILURE_KINDS == schema.kinds_of("guest_failure")
    assert schema.GUEST_PROBLEM_KINDS == schema.kinds_of("guest_problem")
    assert schema.GUEST_KINDS == schema.GUEST_FAILURE_KINDS + schema.GUEST_PROBLEM_KINDS
    assert schema.FAILURE_KINDS == schema.DAEMON_FAILURE_KINDS + schema.GUEST_KINDS


def test_daemon_failures_are_libvirtds_and_never_info():
    assert set(schema.DAEMON_FAILURE_KINDS) == {"restart", "segfault", "hang_start", "daemon_down",
                                                "keepalive_timeout"}
    assert all(schema.EVENT_KINDS[k].severity != "info" for k in schema.DAEMON_FAILURE_KINDS)


def test_guest_failures_are_the_guests_that_stopped_and_guest_kinds_all_concern_one_guest():
    assert set(schema.GUEST_FAILURE_KINDS) == {"domain_failed", "domain_crashed"}
    assert {schema.EVENT_KINDS[k].severity for k in schema.GUEST_FAILURE_KINDS} == {"critical"}
    assert set(schema.GUEST_PROBLEM_KINDS) == {"domain_io_error", "domain_watchdog", "domain_wedged"}
    assert all(k.startswith("domain_") for k in schema.GUEST_KINDS)
    assert not [k for k in schema.EVENT_KINDS if k.startswith("domain_") and k not in schema.GUEST_KINDS]


def test_recoveries_are_info_and_each_ends_a_daemon_failure_and_only_failures_are_failures():
    for kind in schema.RECOVERY_KINDS:
        assert schema.EVENT_KINDS[kind].severity == "info"
        assert schema.EVENT_KINDS[kind].ends and set(schema.EVENT_KINDS[kind].ends) <= set(schema.DAEMON_FAILURE_KINDS)
    assert schema.ended_by("daemon_down") == ("restart", "daemon_up")
    assert set(schema.ended_by("hang_start")) == {"hang_end", "daemon_down", "daemon_up", "restart"}
    assert not set(schema.FAILURE_KINDS) & {*schema.RECOVERY_KINDS, "points_dropped", "log_error"}


def test_a_log_signatures_kind_is_in_the_log_signature_group_and_an_unknown_kind_in_none():
    found = schema.event_kind("log_lock_timeout")
    assert found.group == "log_signature" and found.severity == schema.EVENT_KINDS["log_error"].severity
    assert found.label == "'lock_timeout' log errors"
    assert found.noun == ("'lock_timeout' log error", "'lock_timeout' log errors")
    assert schema.event_kind("restart") is schema.EVENT_KINDS["restart"]
    assert schema.event_kind("log_") is None and schema.event_kind("reboot") is None


def test_every_kind_has_a_label_and_a_noun_and_no_two_kinds_share_them():
    for kind in schema.EVENT_KINDS.values():
        one, many = kind.noun
        assert kind.label and one and many and one != many, kind.name
        assert many in kind.label or kind.label.endswith("s"), kind.name
    assert len({k.label for k in schema.EVENT_KINDS.values()}) == len(schema.EVENT_KINDS)
    assert len({k.noun for k in schema.EVENT_KINDS.values()}) == len(schema.EVENT_KINDS)


def test_sentences_and_the_correlation_page_name_kinds_by_the_schema():
    from analysis.signals import kinds_label, kinds_nouns
    from dashboard.correlation_state import DAEMON_KINDS, GUEST_KINDS, KINDS, kind_options

    for name, kind in schema.EVENT_KINDS.items():
        assert kinds_label((name,)) == kind.label and kinds_nouns((name,)) == kind.noun
    assert kinds_nouns(("restart", "segfault")) == ("failure", "failures")
    assert kinds_nouns(("reboot",)) == ("failure", "failures") and kinds_label(("reboot",)) == "'reboot' events"
    assert (DAEMON_KINDS, GUEST_KINDS, KINDS) == (schema.DAEMON_FAILURE_KINDS, schema.GUEST_KINDS,
                                                  schema.FAILURE_KINDS)
    assert "domain_wedged" in KINDS
    labels = {o["value"]: o["label"] for o in kind_options(["log_lock_timeout"])}
    assert labels["domain_wedged"] == "domain_wedged · wedged guests"
    assert labels["log_lock_timeout"] == "log_lock_timeout · 'lock_timeout' log errors"


def test_the_simulator_draws_every_failure_kind_but_a_wedged_guest_in_its_seeded_order():
    from simulator.spec import DEFAULT_BASE_RATES, FAILURE_KINDS, NOT_SIMULATED

    assert NOT_SIMULATED == ("domain_wedged",)
    assert set(FAILURE_KINDS) == set(schema.FAILURE_KINDS) - set(NOT_SIMULATED)
    # each kind draws from the random stream numbered by its place: a new order would change every seed's fleet
    assert FAILURE_KINDS == ("restart", "segfault", "hang_start", "daemon_down", "keepalive_timeout",
                             "domain_failed", "domain_crashed", "domain_io_error", "domain_watchdog")
    assert tuple(DEFAULT_BASE_RATES) == FAILURE_KINDS


def test_the_alert_rules_read_the_kinds_of_their_group():
    from alerts.event_rules import DaemonDownRule, DaemonHungRule, DomainFailureStormRule

    assert DomainFailureStormRule().kinds == schema.GUEST_FAILURE_KINDS
    assert set(DaemonDownRule().kinds) == {"daemon_down", "daemon_up", "restart"}
    assert set(DaemonHungRule().kinds) == {"hang_start", "hang_end", "daemon_down", "daemon_up", "restart"}


def _kind_collections(tree: ast.AST):
    """Yield (line, kinds) of every tuple, list or set literal of two or more strings that are all event kinds."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2:
            values = [e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None
                      for e in node.elts]
            if all(v is not None and schema.event_kind(v) is not None for v in values):
                yield node.lineno, tuple(values)


def test_the_scan_finds_a_copied_group():
    found = list(_kind_collections(ast.parse('GUEST = ["domain_failed", "domain_crashed"]\n'
                                             'if kind in ("restart", "log_lock_timeout"): pass\n'
                                             'TRIGGERS = ("hang_start", "hang", "manual")\n')))
    assert found == [(1, ("domain_failed", "domain_crashed")), (2, ("restart", "log_lock_timeout"))]


def test_no_module_but_the_schema_spells_a_group_of_event_kinds():
    copies = []
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if module == "tsdb/schema.py":
                continue
            for line, kinds in _kind_collections(ast.parse(path.read_text(), module)):
                if (module, kinds) not in NOT_EVENT_KINDS:
                    copies.append(f"{module}:{line} {kinds}")
    assert not copies, ("event-kind groups live in tsdb/schema.py (DAEMON_FAILURE_KINDS, GUEST_FAILURE_KINDS, "
                        "GUEST_KINDS, FAILURE_KINDS, kinds_of, ended_by); these modules spell their own:\n"
                        + "\n".join(copies))
