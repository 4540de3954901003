"""The extras as import names (virtwatch.extras) agree with pyproject.toml, and a command whose extra is missing
says what to install instead of raising."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from virtwatch import cli, extras
from virtwatch.cli import COMMANDS, Command, main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
#: distributions whose import name is not their name with "-" as "_"
IMPORT_NAMES = {"libvirt-python": "libvirt"}


def project() -> dict:
    """Return pyproject.toml's [project] table."""
    return tomllib.loads(PYPROJECT.read_text())["project"]


def distribution_modules(requirements: list[str], optional: dict[str, list[str]]) -> set[str]:
    """Return the import names of requirements, expanding `virtwatch[...]` into the extras it names."""
    modules: set[str] = set()
    for requirement in requirements:
        name, _, included = re.match(r"([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?", requirement).group(1, 0, 2)
        if name == "virtwatch":
            for extra in included.split(","):
                modules |= distribution_modules(optional[extra], optional)
        else:
            modules.add(IMPORT_NAMES.get(name.lower(), name.lower().replace("-", "_")))
    return modules


def test_every_extra_lists_the_modules_of_its_distributions_in_pyproject():
    optional = {name: reqs for name, reqs in project()["optional-dependencies"].items() if name != "test"}
    assert set(extras.EXTRAS) == set(optional)
    for extra, requirements in optional.items():
        assert set(extras.extra_modules(extra)) == distribution_modules(requirements, optional), extra


def test_the_core_holds_no_module_of_an_extra():
    core = distribution_modules(project()["dependencies"], {})
    assert core == {"libvirt", "platformdirs"}
    assert not core & set(extras.extra_modules("all"))


def test_every_command_names_known_extras_and_the_agent_needs_none():
    for command in COMMANDS:
        assert set(command.extras) <= set(extras.EXTRAS), command.name
    assert {c.name: c.extras for c in COMMANDS if not c.extras} == dict.fromkeys(
        ["agent", "check-config", "diagnose", "silence"], ())


def test_an_extra_includes_the_modules_of_the_extras_it_names_each_once():
    assert extras.extra_modules("dashboard")[:3] == ["pandas", "numpy", "scipy"]
    modules = extras.extra_modules("all")
    assert len(modules) == len(set(modules))


@pytest.fixture
def extra_command():
    """Register a command `needs-extra` whose run records that it ran; unregistered afterwards."""
    ran = []
    command = Command("needs-extra", "a command of the 'nowhere' extra", lambda parser: None,
                      lambda args: ran.append(True) or 0, extras=("nowhere",))
    COMMANDS.append(command)
    try:
        yield ran
    finally:
        COMMANDS.remove(command)


def test_a_command_whose_extra_is_not_installed_prints_the_pip_line_and_does_not_run(extra_command, monkeypatch,
                                                                                     capsys):
    monkeypatch.setitem(extras.EXTRAS, "nowhere", (("frames",), ("virtwatch_no_such_module",)))
    assert main(["needs-extra"]) == cli.MISSING_EXTRA_STATUS and extra_command == []
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("virtwatch needs-extra: needs the 'nowhere' extra of virtwatch, not installed here "
                            "(missing: virtwatch_no_such_module): pip install 'virtwatch[nowhere]'\n")


def test_a_command_whose_extra_is_installed_runs(extra_command, monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "nowhere", ((), ("argparse",)))
    assert main(["needs-extra"]) == 0 and extra_command == [True]


def test_an_import_of_an_extra_that_fails_while_running_names_the_extra_that_installs_it(capsys):
    def run(args: argparse.Namespace) -> int:
        """Fail as a core command importing the embedded store's package where it is not installed would."""
        raise ModuleNotFoundError("No module named 'duckdb'", name="duckdb")

    command = Command("imports-duckdb", "a core command that imports duckdb", lambda parser: None, run)
    COMMANDS.append(command)
    try:
        assert main(["imports-duckdb"]) == cli.MISSING_EXTRA_STATUS
    finally:
        COMMANDS.remove(command)
    assert capsys.readouterr().err.endswith("(missing: duckdb): pip install 'virtwatch[embedded]'\n")


def test_an_import_of_no_extra_that_fails_is_a_bug_and_raises():
    def run(args: argparse.Namespace) -> int:
        """Fail as an import of a module of this project that does not exist would."""
        raise ModuleNotFoundError("No module named 'alerts.gone'", name="alerts.gone")

    command = Command("imports-gone", "a command with a broken import", lambda parser: None, run)
    COMMANDS.append(command)
    try:
        with pytest.raises(ModuleNotFoundError):
            main(["imports-gone"])
    finally:
        COMMANDS.remove(command)


def test_the_command_line_and_the_agent_load_no_package_of_an_extra_even_where_they_are_installed():
    code = ("import sys, virtwatch.cli, virtwatch.wiring, collector.agent, collector.shipper, tsdb.influx; "
            "from virtwatch.extras import extra_modules; "
            "print(' '.join(m for m in extra_modules('all') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PYPROJECT.parent, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "\n", "")
