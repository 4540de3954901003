"""The real commands on crafted configs and flags: one line naming the key or flag, never a traceback or a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIRTWATCH = Path(sys.executable).parent / "virtwatch"
#: the status each command exits with for a bad config (check-config says "not ok" with 1, the others 2)
COMMANDS = {"check-config": (["check-config"], 1), "agent --once": (["agent", "--once"], 2),
            "alerts --once": (["alerts", "--once"], 2), "dashboard": (["dashboard"], 2)}

#: (section, key, TOML value, a secret that must never be printed)
CONFIGS = {
    "an interval of 1e-300 seconds": ("agent", "interval_seconds", "1e-300", None),
    "a timeout of 1e308 seconds": ("store", "timeout_seconds", "1e308", None),
    "an integer of 10**26": ("agent", "keepalive_count", str(10**26), None),
    "a keepalive interval beyond a C int": ("agent", "keepalive_interval_seconds", str(2**31), None),
    "an integer too large for a float where a number belongs": ("alerts", "interval_seconds", str(10**400), None),
    "a NUL in host_name": ("agent", "host_name", '"kvm\\u0000node"', None),
    "a spool larger than 1 TiB": ("agent", "spool_max_bytes", str(2**41), None),
    "a count of 10**26": ("alerts", "storm_min_hosts", str(10**26), None),
    "a window of a year": ("alerts", "segfault_window_seconds", str(365 * 86400), None),
    "a store URL with an unclosed IPv6 bracket and a password":
        ("store", "url", '"influxdb://u:pw-s3cret@[::1/db"', "pw-s3cret"),
    "a store URL without a database": ("store", "url", '"influxdb://localhost:8086/"', None),
    "a relative DuckDB path": ("store", "url", '"duckdb://relative/path"', None),
    "a token in the store URL's query": ("store", "url", '"influxdb://h:8086/db?token=tok-s3cret"', "tok-s3cret"),
}


def environ() -> dict[str, str]:
    """Return the environment without VIRTWATCH_* variables (the developer's must not change results)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VIRTWATCH_")}


def virtwatch(*args: str) -> subprocess.CompletedProcess:
    """Run the installed `virtwatch` command."""
    return subprocess.run([str(VIRTWATCH), *args], capture_output=True, text=True, timeout=120, env=environ(),
                          stdin=subprocess.DEVNULL, cwd=ROOT)


def write_config(tmp_path: Path, section: str, key: str, value: str) -> Path:
    """Write a config whose other keys keep every command on tmp_path and libvirt's test driver; set one key."""
    tables = {"store": {"url": f'"duckdb://{tmp_path}/store.duckdb"'},
              "agent": {"libvirt_uri": '"test:///default"', "spool_dir": f'"{tmp_path}/spool"',
                        "forensics_dir": f'"{tmp_path}/forensics"'},
              "alerts": {"state_dir": f'"{tmp_path}/alerts"'},
              "dashboard": {"listen": '"127.0.0.1:1"'}}
    tables[section][key] = value
    path = tmp_path / "virtwatch.toml"
    path.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
                            for name, keys in tables.items()))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("section, key, value, secret", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_bad_value_is_one_line_naming_its_key_from_every_command(tmp_path, command, section, key, value, secret):
    path = write_config(tmp_path, section, key, value)
    args, status = COMMANDS[command]
    result = virtwatch(*args, str(path)) if command == "check-config" else virtwatch(*args, "--config", str(path))
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{path}: {section}.{key} = ")
    if secret:
        assert secret not in result.stdout + result.stderr
        assert "<redacted>" in line


FLAGS = {
    "an agent interval that is not a number": (["agent", "--once", "--interval", "nan"],
                                               "--interval nan: must be a finite number", None),
    "an agent interval of 1e-300": (["agent", "--once", "--interval", "1e-300"],
                                    "--interval 1e-300: must be from 0.1 to 86400 seconds", None),
    "an empty host name": (["agent", "--once", "--host-name", ""], "--host-name '': must not be empty", None),
    "a store URL that urlsplit refuses, given to the agent": (
        ["agent", "--once", "--store", "influxdb://ops:pw-s3cret@[::1/db"],
        "store: store url 'influxdb://ops:<redacted>@[::1/db': the host is not a name or an address", "pw-s3cret"),
    "a token in a store URL given to the alert engine": (
        ["alerts", "--once", "--store", "influxdb2://h/bucket?org=acme&token=tok-s3cret"],
        "store: store url 'influxdb2://h/bucket?org=acme&token=<redacted>': unknown parameter 'token'",
        "tok-s3cret"),
    "a dashboard with 10**26 workers": (["dashboard", "--workers", str(10**26)],
                                        f"--workers {10**26}: must be from 1 to 256", None),
    "a soak call deadline of 1e308 seconds": (["soak", "--call-timeout", "1e308", "--max-calls", "1"],
                                              "--call-timeout '1e308': must be at most 86400", None),
    "a soak step of 1e308 seconds": (["soak", "--step-seconds", "1e308", "--max-calls", "1"],
                                     "--step-seconds '1e308': must be at most 86400", None),
    "a silence ending in the year 9999 is fine": (
        ["silence", "add", "--until", "9999-12-31T23:59Z", "--comment", "forever", "host=kvm-01"], None, None),
    "a silence regex that only backtracking could match": (
        ["silence", "add", "--duration", "1h", "--comment", "x", r"host=~(a)\1"],
        r"regular expression not supported: a backreference", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("args, line, secret", FLAGS.values(), ids=FLAGS.keys())
def test_a_bad_flag_is_one_line_naming_it(tmp_path, args, line, secret):
    path = write_config(tmp_path, "dashboard", "listen", '"127.0.0.1:1"')
    command = args[:2] if args[0] == "silence" else args[:1]
    result = virtwatch(*command, "--config", str(path), *args[len(command):])
    assert "Traceback" not in result.stderr
    if line is None:
        assert result.returncode == 0, result.stderr
        assert virtwatch("silence", "list", "--config", str(path)).returncode == 0
        return
    assert result.returncode == 2
    [printed] = result.stderr.splitlines()
    assert line in printed
    if secret:
        assert secret not in result.stdout + result.stderr
