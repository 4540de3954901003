"""SLO specs: the shipped file loads, and every bad spec is refused with the file, the SLO, the key and why."""

from fractions import Fraction
from pathlib import Path

import pytest

from alerts.slo import SLO, SLOError, Source, load_slos
from virtwatch.config import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "slos.toml"


def test_the_shipped_slo_file_loads_the_four_built_ins():
    slos = load_slos(SHIPPED)
    assert [(s.name, s.sli, s.objective, s.period) for s in slos] == [
        ("libvirtd-availability", "libvirtd_availability", 99.9, "30d"),
        ("libvirtd-latency", "libvirtd_latency", 99.0, "30d"),
        ("domain-stability", "domain_stability", 99.9, "30d"),
        ("collection-freshness", "collection_freshness", 99.0, "30d"),
    ]
    assert slos[1].threshold_ms == 1000.0 and slos[3].interval_seconds == 10


def test_an_objective_of_99_9_percent_leaves_exactly_one_bad_event_in_a_thousand():
    assert SLO("a", 99.9, "libvirtd_availability").error_budget == Fraction(1, 1000)


def test_a_custom_sli_reads_its_good_and_total_tables(tmp_path):
    path = tmp_path / "slos.toml"
    path.write_text('[[slo]]\nname = "no-segfaults"\nobjective = 99.5\nperiod = "28d"\nsli = "custom"\n'
                    'good = {measurement = "libvirtd", field = "up", aggregate = "sum"}\n'
                    'total = {measurement = "libvirtd", field = "up", where = {host = "hv 1,\\"x\\""}}\n')
    (slo,) = load_slos(path)
    assert slo.good == Source("libvirtd", "up", "sum")
    assert slo.total == Source("libvirtd", "up", "count", (("host", 'hv 1,"x"'),))
    assert slo.period_seconds == 28 * 86400


def test_an_empty_file_holds_no_slos(tmp_path):
    path = tmp_path / "slos.toml"
    path.write_text("")
    assert load_slos(path) == []


OK = 'name = "a"\nobjective = 99.9\nsli = "libvirtd_availability"\n'
BAD = {
    "an objective of 100 percent is refused": (
        'name = "a"\nobjective = 100\nsli = "libvirtd_availability"',
        ['slo[0] "a".objective = 100.0: must be a percent between 0 and 100, both excluded (e.g. 99.9)']),
    "an objective written as a string is refused": (
        'name = "a"\nobjective = "99.9"\nsli = "libvirtd_availability"',
        ['slo[0] "a".objective = "99.9": expected a number, got a string']),
    "a period other than 30d or 28d is refused": (
        OK + 'period = "7d"', ['slo[0] "a".period = "7d": must be one of 30d, 28d']),
    "an unknown sli is refused": (
        'name = "a"\nobjective = 99\nsli = "uptime"',
        ['slo[0] "a".sli = "uptime": must be one of libvirtd_availability, libvirtd_latency, domain_stability, '
         'collection_freshness, custom']),
    "a latency sli without threshold_ms is refused": (
        'name = "a"\nobjective = 99\nsli = "libvirtd_latency"', ['slo[0] "a".threshold_ms: missing required key']),
    "a threshold_ms on another sli is refused": (
        OK + "threshold_ms = 5",
        ['slo[0] "a".threshold_ms: not used by sli libvirtd_availability (only by libvirtd_latency)']),
    "an interval that does not divide a minute is refused": (
        'name = "a"\nobjective = 99\nsli = "collection_freshness"\ninterval_seconds = 7',
        ['slo[0] "a".interval_seconds = 7: must be a whole number of seconds that divides 60 (1, 2, 5, 10, 15, '
         '30, 60...)']),
    "an unknown key is refused": (OK + "objectve = 99", ['slo[0] "a".objectve: unknown key']),
    "a missing name and objective are both reported": (
        'sli = "domain_stability"', ["slo[0].name: missing required key", "slo[0].objective: missing required key"]),
    "a custom sli without good and total is refused": (
        'name = "a"\nobjective = 99\nsli = "custom"',
        ['slo[0] "a".good: missing required key', 'slo[0] "a".total: missing required key']),
    "a custom source with a bad aggregate and no field is refused": (
        'name = "a"\nobjective = 99\nsli = "custom"\ngood = {measurement = "m", aggregate = "mean"}\n'
        'total = {measurement = "m", field = "f", where = {host = 1}}',
        ['slo[0] "a".good.field: missing required key',
         'slo[0] "a".good.aggregate = "mean": must be one of count, sum',
         'slo[0] "a".total.where.host = 1: expected a string, got an integer']),
}


@pytest.mark.parametrize("body, problems", BAD.values(), ids=BAD.keys())
def test_bad_spec(tmp_path, body, problems):
    path = tmp_path / "slos.toml"
    path.write_text("[[slo]]\n" + body + "\n")
    with pytest.raises(SLOError) as caught:
        load_slos(path)
    assert caught.value.problems == problems
    assert str(caught.value).startswith(f"{path}: slo[0]")


def test_every_problem_of_every_slo_is_reported_at_once_and_duplicates_are_named(tmp_path):
    path = tmp_path / "slos.toml"
    path.write_text("[[slo]]\n" + OK + "[[slo]]\n" + OK + "[[slo]]\nname = \"b\"\nobjective = 0\nsli = \"custom\"\n")
    with pytest.raises(ConfigError) as caught:
        load_slos(path)
    assert caught.value.problems == [
        'slo[1] "a".name = "a": duplicate of slo[0]',
        'slo[2] "b".good: missing required key',
        'slo[2] "b".total: missing required key',
        'slo[2] "b".objective = 0.0: must be a percent between 0 and 100, both excluded (e.g. 99.9)',
    ]


FILES = {
    "a file that is not TOML is refused with the parser's reason": ("[[slo]\n", "not valid TOML: "),
    "a top-level key other than slo is refused": ('objective = 99\n', "objective: unknown key (an SLO file holds "
                                                  "only [[slo]] tables)"),
    "slo written as a table instead of an array of tables is refused": (
        '[slo]\nname = "a"\n', "slo = {...}: expected an array of tables ([[slo]]), got a table"),
}


@pytest.mark.parametrize("text, problem", FILES.values(), ids=FILES.keys())
def test_bad_file(tmp_path, text, problem):
    path = tmp_path / "slos.toml"
    path.write_text(text)
    with pytest.raises(SLOError) as caught:
        load_slos(path)
    assert caught.value.problems[0].startswith(problem)


def test_a_missing_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(SLOError, match=r"slos.toml: cannot read the file"):
        load_slos(tmp_path / "slos.toml")
