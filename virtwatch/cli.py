"""The `virtwatch` command: an argparse shell whose subcommands are rows of the COMMANDS table.

To add a subcommand, write `add_arguments(parser)` and `run(args) -> int` and append a `Command` row. Import
heavy packages (libvirt, dash, pandas) inside `run`, so `virtwatch --version` and `check-config` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import virtwatch
from virtwatch.config import ConfigError, load_config


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, how it declares its arguments and how it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_check_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare check-config's arguments."""
    parser.add_argument("file", metavar="FILE", help="the TOML config file to check")


def run_check_config(args: argparse.Namespace) -> int:
    """Print `ok` if FILE is a valid config (secrets from the environment included), else every problem."""
    try:
        load_config(args.file, os.environ)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        return 1
    print("ok")
    return 0


COMMANDS: list[Command] = [
    Command("check-config", "check a config file and list every problem in it",
            add_check_config_arguments, run_check_config),
]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """Build the argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="virtwatch", description="Reliability observatory for libvirt/KVM: measures libvirtd itself.")
    parser.add_argument("--version", action="version", version=f"virtwatch {virtwatch.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in commands:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the virtwatch command line and return its exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors: keep argparse's status
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130  # 128 + SIGINT, as shells report it
