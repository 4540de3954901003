"""`[alerts] shard` and `virtwatch alerts --shard I/N`: read, checked as the other keys are, and wired into the engine."""

import logging
import os

import pytest

from alerts.shard import Shard
from tsdb import open_store
from virtwatch.alerts_command import describe_shard
from virtwatch.cli import main
from virtwatch.config import ConfigError, check_key, load_config
from virtwatch.wiring import engine_from_config


def write(tmp_path, text, name="virtwatch.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    return caught.value.problems


@pytest.fixture
def clean_environ(monkeypatch):
    """Remove VIRTWATCH_* variables so the developer's environment cannot change results."""
    for name in list(os.environ):
        if name.startswith("VIRTWATCH_"):
            monkeypatch.delenv(name)


def test_the_shard_defaults_to_the_only_one(tmp_path):
    assert load_config(write(tmp_path, ""), {}).alerts.shard == "0/1"


@pytest.mark.parametrize("value", ["0/2", "1/2", "3/4", " 2 / 3 ", "999/1000"])
def test_a_shard_below_its_count_is_accepted(tmp_path, value):
    assert load_config(write(tmp_path, f'[alerts]\nshard = "{value}"\n'), {}).alerts.shard == value


BAD_SHARDS = {
    "an index equal to the count is refused naming the range":
        ('"2/2"', 'alerts.shard = "2/2": the index must be below the number of shards (0/2 to 1/2)'),
    "no shards at all are refused":
        ('"0/0"', 'alerts.shard = "0/0": the number of shards must be from 1 to 1000'),
    "an absurd number of shards is refused":
        ('"0/1000000"', 'alerts.shard = "0/1000000": the number of shards must be from 1 to 1000'),
    "a fraction that is not I/N is refused saying what is expected":
        ('"half"', 'alerts.shard = "half": expected I/N, the shard\'s index from 0 and the number of shards, '
                   "e.g. 0/2"),
    "a negative index is refused":
        ('"-1/2"', 'alerts.shard = "-1/2": expected I/N, the shard\'s index from 0 and the number of shards, '
                   "e.g. 0/2"),
    "a number is not a string":
        ("1", "alerts.shard = 1: expected a string, got an integer"),
}


@pytest.mark.parametrize("value, problem", BAD_SHARDS.values(), ids=BAD_SHARDS.keys())
def test_a_bad_shard_is_a_config_error_naming_the_key_and_the_reason(tmp_path, value, problem):
    assert problems_of(tmp_path, f"[alerts]\nshard = {value}\n") == [problem]


def test_the_shard_flag_is_checked_as_the_key_would_be():
    assert check_key("alerts", "shard", "1/2") is None
    assert check_key("alerts", "shard", "2/2") == "the index must be below the number of shards (0/2 to 1/2)"


def test_the_engine_is_built_for_the_configured_shard(tmp_path):
    config = load_config(write(tmp_path, f'[alerts]\nshard = "1/3"\nstate_dir = "{tmp_path / "state"}"\n'), {})
    store = open_store(f"duckdb://{tmp_path}/store.duckdb")
    try:
        engine = engine_from_config(config.alerts, store)
        assert engine.shard == Shard(1, 3)
        assert "shard 1/3" in repr(engine)
        whole = engine_from_config(load_config(write(tmp_path, "", "whole.toml"), {}).alerts, store,
                                   clock=engine.clock)
        assert whole.shard == Shard(0, 1)
    finally:
        store.close()


def test_the_start_line_says_which_hosts_and_alerts_a_shard_owns():
    assert describe_shard(Shard(0, 1)) == "shard 0/1: every host and the fleet-wide alerts (the only shard)"
    assert describe_shard(Shard(0, 2)) == "shard 0/2: the hosts whose crc32 % 2 is 0, and the fleet-wide alerts"
    assert describe_shard(Shard(1, 2)) == ("shard 1/2: the hosts whose crc32 % 2 is 1 (the fleet-wide alerts are "
                                           "shard 0's)")


def test_alerts_once_runs_the_shard_of_the_flag_and_says_so(tmp_path, capsys, caplog, clean_environ):
    path = write(tmp_path, f'[store]\nurl = "duckdb://{tmp_path}/store.duckdb"\n'
                           f'[alerts]\nstate_dir = "{tmp_path / "state"}"\n')
    with caplog.at_level(logging.INFO, logger="virtwatch.alerts"):
        assert main(["alerts", "--once", "--shard", "1/2", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("shard 1/2: evaluated ") and "0 alerts firing" in out
    assert any("alert engine shard 1/2" in r.getMessage() and str(tmp_path / "state") in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("flag, reason", [
    ("2/2", "the index must be below the number of shards (0/2 to 1/2)"),
    ("1of2", "expected I/N, the shard's index from 0 and the number of shards, e.g. 0/2"),
])
def test_a_bad_shard_flag_exits_2_naming_the_flag_and_the_reason(tmp_path, capsys, flag, reason, clean_environ):
    path = write(tmp_path, f'[store]\nurl = "duckdb://{tmp_path}/store.duckdb"\n'
                           f'[alerts]\nstate_dir = "{tmp_path / "state"}"\n')
    assert main(["alerts", "--once", "--shard", flag, "--config", str(path)]) == 2
    assert capsys.readouterr().err == f"--shard {flag!r}: {reason}\n"
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_a_bad_shard_in_the_file_exits_2_naming_the_key(tmp_path, capsys, clean_environ):
    path = write(tmp_path, '[alerts]\nshard = "3/2"\n')
    assert main(["alerts", "--once", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (f'{path}: alerts.shard = "3/2": the index must be below the number of shards '
                                       "(0/2 to 1/2)\n")
