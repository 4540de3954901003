"""Tests of the virtwatch command line: --version, check-config, and the real `python -m virtwatch`."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import virtwatch
from virtwatch.cli import COMMANDS, Command, build_parser, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "virtwatch.example.toml"
BAD = '[store]\ncolour = 1\n[agent]\ninterval_seconds = "10"\n[dashboard]\nlisten = "nonsense"\n'


@pytest.fixture
def clean_environ(monkeypatch):
    """Remove VIRTWATCH_* variables so the developer's environment cannot change results."""
    for name in list(os.environ):
        if name.startswith("VIRTWATCH_"):
            monkeypatch.delenv(name)


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"virtwatch {virtwatch.__version__}\n"


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_check_config_prints_ok_for_a_valid_file(capsys, clean_environ):
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr() == ("ok\n", "")


def test_check_config_lists_every_problem_prefixed_by_the_file(tmp_path, capsys, clean_environ):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}: store.colour: unknown key",
        f'{path}: agent.interval_seconds = "10": expected a number, got a string',
        f'{path}: dashboard.listen = "nonsense": expected HOST:PORT',
    ]


def test_check_config_reports_a_missing_file(tmp_path, capsys):
    path = tmp_path / "absent.toml"
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: cannot read {path}: No such file or directory\n"


def test_check_config_reads_secrets_from_the_environment(tmp_path, capsys, monkeypatch, clean_environ):
    path = tmp_path / "pd.toml"
    path.write_text('[[alerts.receivers]]\nname = "pd"\ntype = "pagerduty"\n')
    assert main(["check-config", str(path)]) == 1
    assert "VIRTWATCH_RECEIVER_PD_ROUTING_KEY" in capsys.readouterr().err
    monkeypatch.setenv("VIRTWATCH_RECEIVER_PD_ROUTING_KEY", "rk")
    assert main(["check-config", str(path)]) == 0


def test_a_registered_command_becomes_a_subcommand(capsys):
    seen = []
    extra = Command("hello", "say hello", lambda parser: parser.add_argument("--who", default="world"),
                    lambda args: seen.append(args.who) or 0)
    args = build_parser([*COMMANDS, extra]).parse_args(["hello", "--who", "ops"])
    assert args.run(args) == 0 and seen == ["ops"]


def test_every_command_has_a_name_help_and_functions():
    for command in COMMANDS:
        assert command.name and command.help
        command.add_arguments(argparse.ArgumentParser())


def run_module(*args):
    """Run `python -m virtwatch ARGS` in a fresh interpreter from the source tree."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIRTWATCH_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "virtwatch", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_the_real_command_checks_a_good_and_a_bad_file(tmp_path):
    good = run_module("check-config", str(EXAMPLE))
    assert (good.returncode, good.stdout, good.stderr) == (0, "ok\n", "")
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    bad = run_module("check-config", str(path))
    assert (bad.returncode, bad.stdout) == (1, "")
    assert len(bad.stderr.splitlines()) == 3 and all(line.startswith(f"{path}: ") for line in bad.stderr.splitlines())


def test_the_real_command_prints_its_version():
    result = run_module("--version")
    assert (result.returncode, result.stdout) == (0, f"virtwatch {virtwatch.__version__}\n")
