"""Host load parsers read /proc text exactly; the reader takes a /proc root so fixtures stand in for it."""

import shutil
from pathlib import Path

import pytest

from collector.procfs import HostLoad, parse_cpu_jiffies, parse_loadavg, parse_meminfo

FIXTURES = Path(__file__).parent / "fixtures" / "proc"


def test_loadavg_gives_the_three_averages():
    assert parse_loadavg((FIXTURES / "loadavg").read_text()) == {"load1": 0.52, "load5": 0.58, "load15": 0.59}


def test_meminfo_gives_total_and_available_in_bytes():
    assert parse_meminfo((FIXTURES / "meminfo").read_text()) == {
        "memory_total_bytes": 24684096 * 1024, "memory_available_bytes": 22000000 * 1024}


def test_cpu_jiffies_count_idle_and_iowait_as_not_busy():
    assert parse_cpu_jiffies((FIXTURES / "stat").read_text()) == (1580, 9780)


def test_a_stat_file_without_the_cpu_line_is_an_error():
    with pytest.raises(ValueError, match="cpu"):
        parse_cpu_jiffies("intr 1\n")


def test_cpu_busy_percent_is_measured_between_two_reads(tmp_path):
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES, proc)
    load = HostLoad(str(proc))
    assert "cpu_busy_percent" not in load.read()
    (proc / "stat").write_text("cpu  1300 50 500 8600 200 0 30 0 0 0\n")
    assert load.read()["cpu_busy_percent"] == pytest.approx(100 * 300 / 900)
