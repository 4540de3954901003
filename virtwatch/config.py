"""Load virtwatch's one TOML config file into frozen dataclasses, reporting every problem at once.

The file has four optional sections, `[store]`, `[agent]`, `[alerts]` (with `[[alerts.receivers]]` and
`[alerts.leak]`) and `[dashboard]`; every key is optional except a receiver's `name` and `type`, so an empty file
is a valid config. Each section's dataclass and checks live beside its component (tsdb.config, collector.config,
alerts.config, alerts.notify.config with its receiver types, dashboard.config); this module composes them.
A key's name in the file is the field's name in its dataclass; `deploy/virtwatch.example.toml` shows them all.

Every number has a range (an interval or deadline 0.1 s to a day, an alert window up to 30 days, counts and sizes
bounded), no string holds a NUL, and the store URL is parsed by tsdb's own parser (tsdb.urls), so what a command
would refuse at start, or die of, is a problem here. `check_key` applies a key's checks to a command-line flag
overriding it.

Secrets may come from the environment, which wins over the file (an empty variable counts as unset):
`VIRTWATCH_STORE_TOKEN`, `VIRTWATCH_STORE_USERNAME`, `VIRTWATCH_STORE_PASSWORD`,
`VIRTWATCH_DASHBOARD_BASIC_AUTH_PASSWORD`, and per receiver `VIRTWATCH_RECEIVER_<NAME>_URL`, `_SECRET`,
`_ROUTING_KEY`, NAME being the receiver's name upper-cased with every character outside A-Z and 0-9 made `_`.

Errors: `ConfigError` (tsdb.config_keys's, the one every component raises), whose `.problems` lists every problem
as `key.path = value: reason`. Secret values are printed as `<redacted>`, in problems and in the dataclasses'
reprs alike.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.config import AlertsConfig, LeakConfig
from alerts.notify.config import ReceiverConfig, receiver_env_var
from alerts.notify.pagerduty import EVENTS_URL as PAGERDUTY_EVENTS_URL
from alerts.notify.receivers import RECEIVER_TYPES, read_receivers
from collector.config import AgentConfig
from dashboard.config import (DASHBOARD_ENV, DashboardConfig, dashboard_problems, is_loopback,
                              public_listen_problem)
from tsdb.config import STORE_ENV, StoreConfig
from tsdb.config_keys import (ConfigError, did_you_mean, env_secrets, key_problem, literal, read_subtable,
                              read_table, split_host_port, type_name)

__all__ = ["PAGERDUTY_EVENTS_URL", "RECEIVER_TYPES", "SECTIONS", "AgentConfig", "AlertsConfig", "Config",
           "ConfigError", "DashboardConfig", "LeakConfig", "ReceiverConfig", "StoreConfig", "check_key",
           "config_from_dict", "is_loopback", "load_config", "load_config_or_defaults", "print_problems",
           "public_listen_problem", "receiver_env_var", "split_host_port"]


@dataclass(frozen=True)
class Config:
    """The whole config file: one dataclass per section."""

    store: StoreConfig = field(default_factory=StoreConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)


SECTIONS: dict[str, type] = {"store": StoreConfig, "agent": AgentConfig, "alerts": AlertsConfig,
                             "dashboard": DashboardConfig}
SECTION_ENV = {"store": STORE_ENV, "dashboard": DASHBOARD_ENV}


# ---- reading ----


def load_config(path: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> Config:
    """Read, parse and check one TOML config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError([f"cannot read {path}: {error.strerror or error}"], path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError([f"cannot read {path}: not UTF-8 text at line {line}"], path) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([_syntax_problem(path, error)], path) from None
    return config_from_dict(table, environ, base_dir=path.absolute().parent, source=path)


def _syntax_problem(path: Path, error: tomllib.TOMLDecodeError) -> str:
    """Turn tomllib's message into a problem naming the file and line."""
    message = str(error)
    where = re.search(r"\s*\(at (line \d+, column \d+|end of document)\)$", message)
    if not where:
        return f"TOML syntax error in {path}: {message}"
    return f"TOML syntax error in {path} at {where[1]}: {message[:where.start()]}"


def config_from_dict(table: Mapping[str, Any], environ: Mapping[str, str] = os.environ,
                     base_dir: Path | None = None, source: str | os.PathLike | None = None) -> Config:
    """Check a parsed TOML document; relative paths are taken from base_dir. Raise ConfigError if bad."""
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for name, value in table.items():
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section{did_you_mean(name, SECTIONS)}")
        elif not isinstance(value, dict):
            problems.append(f"{name} = {literal(value)}: expected a table, got {type_name(value)}")
    for name, cls in SECTIONS.items():
        raw = table.get(name, {})
        raw = raw if isinstance(raw, dict) else {}
        values = read_table(cls, raw, name, problems, env_secrets(SECTION_ENV.get(name, {}), environ), base_dir)
        if name == "alerts" and "receivers" in raw:
            values["receivers"] = read_receivers(raw["receivers"], problems, environ, base_dir)
        if name == "alerts" and "leak" in raw:
            values["leak"] = read_subtable(LeakConfig, raw["leak"], "alerts.leak", problems, base_dir)
        sections[name] = values
    problems += dashboard_problems(sections["dashboard"], table.get("dashboard"))
    if problems:
        raise ConfigError(problems, source)
    return Config(**{name: SECTIONS[name](**values) for name, values in sections.items()})


def check_key(section: str, key: str, value: Any) -> str | None:
    """Return why value cannot be `[section] key` (what a command-line flag overriding it is told), or None."""
    return key_problem(SECTIONS[section], key, value)


def load_config_or_defaults(path: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read the config file a command was given, or the defaults (secrets from the environment) without one."""
    return load_config(path, environ) if path else config_from_dict({}, environ)


def print_problems(path: str | os.PathLike | None, error: ConfigError, stream=None) -> int:
    """Print each problem of a config on its own line, prefixed by the file; return 2, the commands' status."""
    import sys

    for problem in error.problems:
        print(f"{path}: {problem}", file=stream or sys.stderr)
    return 2
