"""`[alerts.leak]`: read, checked as the other keys are, shown in the example, and wired into the engine."""

import dataclasses
import re
from pathlib import Path

import pytest

from alerts.leak_rule import LeakRule
from alerts.leaks import LeakPolicy
from tsdb import open_store
from virtwatch.config import ConfigError, LeakConfig, load_config
from virtwatch.wiring import engine_from_config

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "virtwatch.example.toml"


def write(tmp_path, text, name="virtwatch.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    return caught.value.problems


def test_the_leak_defaults_are_the_leak_policys():
    config = LeakConfig()
    policy = LeakPolicy()
    for f in dataclasses.fields(LeakPolicy):
        assert getattr(config, f.name) == getattr(policy, f.name), f.name
    assert (config.enabled, config.fd_severity, config.rss_severity) == (True, "page", "ticket")


def test_the_example_file_names_every_leak_key_in_its_own_table():
    text = EXAMPLE.read_text()
    table = text[text.index("\n[alerts.leak]\n"):]
    table = table[:table.index("\n[[")]
    for f in dataclasses.fields(LeakConfig):
        assert re.search(rf"^{f.name} = ", table, re.M), f.name
    assert load_config(EXAMPLE, {}).alerts.leak == LeakConfig()


def test_a_leak_table_is_read_into_the_alerts_config(tmp_path):
    config = load_config(write(tmp_path, '[alerts.leak]\nfd_share = 0.8\nfd_horizon_seconds = 3600\n'
                                         'fd_severity = "ticket"\nrss_min_hours = 0.5\nenabled = false\n'), {})
    assert config.alerts.leak == LeakConfig(fd_share=0.8, fd_horizon_seconds=3600.0, fd_severity="ticket",
                                            rss_min_hours=0.5, enabled=False)


BAD_LEAK_VALUES = {
    "a share above one is refused":
        ("fd_share = 1.5", "alerts.leak.fd_share = 1.5: must be more than 0 and at most 1"),
    "a zero share is refused":
        ("fd_share = 0", "alerts.leak.fd_share = 0: must be more than 0 and at most 1"),
    "a horizon beyond 30 days is refused":
        ("fd_horizon_seconds = 2592001",
         "alerts.leak.fd_horizon_seconds = 2592001: must be from 0.1 to 2592000 seconds (at most 30 days)"),
    "a fit longer than a day is refused":
        ("fd_fit_seconds = 86401",
         "alerts.leak.fd_fit_seconds = 86401: must be from 0.1 to 86400 seconds (at most a day)"),
    "memory hours beyond a day are refused":
        ("rss_min_hours = 25", "alerts.leak.rss_min_hours = 25: must be from 0.001 to 24 hours (at most a day)"),
    "a fractional growth in bytes is refused":
        ("rss_min_growth_bytes_per_hour = 0.5",
         "alerts.leak.rss_min_growth_bytes_per_hour = 0.5: expected an integer, got a float"),
    "an r² above one is refused":
        ("rss_min_r2 = 1.1", "alerts.leak.rss_min_r2 = 1.1: must be more than 0 and at most 1"),
    "a severity other than page or ticket is refused":
        ('fd_severity = "sms"', 'alerts.leak.fd_severity = "sms": must be "page" or "ticket"'),
    "enabled must be a boolean":
        ('enabled = "yes"', 'alerts.leak.enabled = "yes": expected a boolean, got a string'),
    "an unknown key gets a suggestion":
        ("fd_shares = 0.5", "alerts.leak.fd_shares: unknown key (did you mean fd_share?)"),
    "a zero interval is refused":
        ("interval_seconds = 0", "alerts.leak.interval_seconds = 0: must be from 0.1 to 86400 seconds (at most a day)"),
}


@pytest.mark.parametrize("line, problem", BAD_LEAK_VALUES.values(), ids=BAD_LEAK_VALUES.keys())
def test_each_bad_leak_key_is_named_with_its_value_and_reason(tmp_path, line, problem):
    assert problem in problems_of(tmp_path, f"[alerts.leak]\n{line}\n")


def test_a_leak_key_that_is_not_a_table_is_refused(tmp_path):
    assert problems_of(tmp_path, "[alerts]\nleak = 3\n") == [
        "alerts.leak = 3: expected a table ([alerts.leak]), got an integer"]


NUMBER_KEYS = [f.name for f in dataclasses.fields(LeakConfig) if f.metadata["kind"] in (int, float)]


@pytest.mark.parametrize("key", NUMBER_KEYS)
def test_every_leak_number_has_a_sane_range(key):
    check = {f.name: f for f in dataclasses.fields(LeakConfig)}[key].metadata["check"]
    for absurd in (10**26, -(10**26), 0):
        assert check(absurd), f"alerts.leak.{key} = {absurd} passed"
    assert check(getattr(LeakConfig(), key)) is None


def test_the_engine_gets_the_configured_leak_rule_and_cadence(tmp_path):
    config = load_config(write(tmp_path, f'[alerts]\nstate_dir = "{tmp_path / "state"}"\n[alerts.leak]\n'
                                         'fd_share = 0.8\nfd_severity = "ticket"\ninterval_seconds = 120\n'), {})
    with open_store(f"duckdb://{tmp_path}/store.duckdb") as store:
        engine = engine_from_config(config.alerts, store)
        assert engine.leak_rule == LeakRule(LeakPolicy(fd_share=0.8), fd_severity="ticket", rss_severity="ticket")
        assert engine.leak_interval_seconds == 120


def test_a_disabled_leak_rule_is_not_in_the_engine(tmp_path):
    config = load_config(write(tmp_path, f'[alerts]\nstate_dir = "{tmp_path / "state"}"\n[alerts.leak]\n'
                                         'enabled = false\n'), {})
    with open_store(f"duckdb://{tmp_path}/store.duckdb") as store:
        assert engine_from_config(config.alerts, store).leak_rule is None
