"""The `virtwatch` command: an argparse shell whose subcommands are rows of the COMMANDS table.

To add a subcommand, write `add_arguments(parser)` and `run(args) -> int` and append a `Command` row naming the
extras its `run` needs (virtwatch.extras). Import heavy packages (libvirt, dash, pandas) inside `run`, so
`virtwatch --version` and `check-config` stay fast and a command whose extra is missing says what to install
instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import virtwatch
from virtwatch.alerts_command import add_alerts_arguments, run_alerts
from virtwatch.config import ConfigError, load_config, load_config_or_defaults, print_problems
from virtwatch.demo import add_demo_arguments, run_demo
from virtwatch.diagnose_command import add_diagnose_arguments, run_diagnose
from virtwatch.dashboard_command import add_dashboard_arguments, run_dashboard
from virtwatch.extras import MissingExtra, extra_providing, missing_message, require_extras
from virtwatch.silence_command import add_silence_arguments, run_silence
from virtwatch.soak_command import add_soak_arguments, run_soak


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, how it declares its arguments, how it runs and the extras it needs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    #: the distribution's extras `run` imports from (pyproject.toml); () for the core
    extras: tuple[str, ...] = ()


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


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the agent's arguments: flags override the config file."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file (defaults apply without one)")
    parser.add_argument("--once", action="store_true", help="collect once, write, and exit")
    parser.add_argument("--libvirt-uri", help="libvirt URI to watch (overrides [agent] libvirt_uri)")
    parser.add_argument("--store", metavar="URL", help="store URL (overrides [store] url)")
    parser.add_argument("--host-name", help="host tag of every point (overrides [agent] host_name)")
    parser.add_argument("--interval", type=float, metavar="SECONDS",
                        help="seconds between collections (overrides [agent] interval_seconds)")


def run_agent(args: argparse.Namespace) -> int:
    """Run the collector agent until SIGTERM/SIGINT, or once with --once."""
    import gc
    import signal
    import threading

    from collector.spool import Spool, SpoolBusy
    from tsdb import StoreError
    from virtwatch.wiring import agent_from_config, setup_logging, store_from_config

    setup_logging()
    try:
        config = load_config_or_defaults(args.config)
    except ConfigError as error:
        return print_problems(args.config, error)
    reason = _override_problem(args)
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    try:
        store = store_from_config(config.store, args.store)
    except StoreError as error:
        print(f"store: {error}", file=sys.stderr)
        return 2
    agent_config = config.agent
    try:
        spool = Spool(agent_config.spool_dir, agent_config.spool_max_bytes)
    except SpoolBusy as error:
        print(f"agent.spool_dir = {str(agent_config.spool_dir)!r}: {error} (is another agent running?)",
              file=sys.stderr)
        store.close()
        return 2
    except OSError as error:
        print(f"agent.spool_dir = {str(agent_config.spool_dir)!r}: cannot use it: {error}", file=sys.stderr)
        store.close()
        return 2
    agent = agent_from_config(agent_config, store, spool, libvirt_uri=args.libvirt_uri, host_name=args.host_name,
                              interval_seconds=args.interval)
    source, health = agent.source, agent.daemon_health
    endpoint = None
    if agent_config.metrics_listen:
        from collector.metrics_endpoint import MetricsEndpoint
        from virtwatch.config import split_host_port

        host, port = split_host_port(agent_config.metrics_listen)
        try:
            endpoint = MetricsEndpoint(host, port)
        except OSError as error:
            print(f"agent.metrics_listen = {agent_config.metrics_listen!r}: cannot listen: {error}", file=sys.stderr)
            source.close(), health.close(), spool.close(), store.close()
            return 2
        agent.on_collection = endpoint.update
    # Move everything loaded so far (libraries, config) out of the collector's sight: full collections of
    # the garbage collector then skip tens of thousands of objects that live as long as the process.
    gc.freeze()
    if args.once:
        try:
            return 0 if agent.collect_and_write() else 1
        finally:
            agent.shutdown()
            _close_agent_parts(endpoint, source, health, spool, store)
            gc.unfreeze()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    finished = agent.run(stop)
    # Close within a second whatever happens: a call stuck in libvirt or a write stuck in a store that never
    # answers must not hold the exit (the spool already holds every point not written).
    closer = threading.Thread(target=_close_agent_parts, args=(endpoint, source, health, spool,
                                                               store if finished else None), daemon=True)
    closer.start()
    closer.join(EXIT_CLOSE_SECONDS)
    if not finished or closer.is_alive():
        logging.getLogger("virtwatch.agent").warning("exiting without waiting for %s",
                                                     "a write stuck in the store" if not finished else "closes")
        logging.shutdown()
        os._exit(0)
    gc.unfreeze()  # let extension objects be finalized normally at exit
    return 0


def _override_problem(args: argparse.Namespace) -> str | None:
    """Return the problem of the first agent flag that its config key would refuse, on one line, or None."""
    from virtwatch.config import check_key

    for flag, section, key, value in (("--interval", "agent", "interval_seconds", args.interval),
                                      ("--host-name", "agent", "host_name", args.host_name),
                                      ("--libvirt-uri", "agent", "libvirt_uri", args.libvirt_uri)):
        reason = None if value is None else check_key(section, key, value)
        if reason is not None:
            shown = f"{value:g}" if isinstance(value, float) else repr(value)
            return f"{flag} {shown}: {reason}"
    return None


#: how long `virtwatch agent` waits for its parts to close at exit before leaving anyway
EXIT_CLOSE_SECONDS = 0.8


def _close_agent_parts(endpoint, source, health, spool, store) -> None:
    """Close the agent's parts (store None: leave it, a write is stuck in it)."""
    if endpoint is not None:
        endpoint.close()
    source.close()
    health.close()
    spool.close()
    if store is not None:
        store.close()


COMMANDS: list[Command] = [
    Command("agent", "run the collector agent: libvirtd health, domains and host load into the store",
            add_agent_arguments, run_agent),
    Command("alerts", "run the alert engine: SLO burn rates and event rules, pages to the receivers",
            add_alerts_arguments, run_alerts, extras=("alerts",)),
    Command("demo", "see it all work: a simulated fleet, the agent, the alert engine and the dashboard in one process",
            add_demo_arguments, run_demo, extras=("dashboard", "embedded")),
    Command("check-config", "check a config file and list every problem in it",
            add_check_config_arguments, run_check_config),
    Command("dashboard", "serve the web dashboard: fleet, hosts, SLOs, events, alerts and silences",
            add_dashboard_arguments, run_dashboard, extras=("dashboard",)),
    Command("diagnose", "capture libvirtd's forensics now (threads, pool, clients, logs, guests) and print them",
            add_diagnose_arguments, run_diagnose),
    Command("silence", "add, list or expire alert silences", add_silence_arguments, run_silence),
    Command("soak", "burn in libvirtd under load: concurrent clients, their load recorded, a table of what broke",
            add_soak_arguments, run_soak, extras=("soak",)),
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
        subparser.set_defaults(run=command.run, _command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the virtwatch command line and return its exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors: keep argparse's status
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    command: Command = args._command
    try:
        require_extras(command.name, command.extras)
        return args.run(args)
    except MissingExtra as error:
        print(error, file=sys.stderr)
        return MISSING_EXTRA_STATUS
    except ModuleNotFoundError as error:  # an import the command's extras do not list: still say what to install
        extra = extra_providing(error.name or "", command.extras)
        if extra is None:
            raise
        print(missing_message(command.name, [extra], [error.name]), file=sys.stderr)
        return MISSING_EXTRA_STATUS
    except KeyboardInterrupt:
        return 130  # 128 + SIGINT, as shells report it


#: the exit status of a command whose extra is not installed (as for a config it cannot run with)
MISSING_EXTRA_STATUS = 2
