"""`virtwatch soak`: drive a libvirtd with concurrent clients, record the load, print what broke.

Exit status: 0 done; 1 the daemon answered no call in the whole last step, or test domains were left behind;
2 bad arguments (one line naming the argument and the reason); 128+signal after a clean stop on SIGINT (130)
or SIGTERM (143).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading

from virtwatch.config import ConfigError, check_key, load_config_or_defaults

DEFAULT_MAX_GUESTS = 16
DAY_SECONDS = 86400.0  # the longest step and call deadline, as every interval and deadline of the config
MAX_SOAK_SECONDS = 30 * DAY_SECONDS
MAX_CALLS = 10**12
MAX_GUESTS = 4096  # as many as the most clients a step may have


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the soak's arguments: flags override the config file."""
    from collector.soak.plan import DEFAULT_MIX, DEFAULT_STEPS

    parser.add_argument("--config", metavar="FILE", help="TOML config file: [store] url, [agent] host_name, "
                        "libvirt_uri, probe_timeout_seconds and keepalive settings")
    parser.add_argument("--libvirt-uri", "--uri", dest="libvirt_uri", metavar="URI",
                        help="libvirt URI to soak (overrides [agent] libvirt_uri)")
    parser.add_argument("--store", metavar="URL", help="store URL for the soak points (overrides [store] url)")
    parser.add_argument("--host-name", help="host tag of the soak points (overrides [agent] host_name)")
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)), metavar="N,N,...",
                        help="concurrent clients in each step (default %(default)s)")
    parser.add_argument("--step-seconds", default="60", metavar="SECONDS",
                        help="length of each step (default %(default)s)")
    parser.add_argument("--duration", metavar="SECONDS", help="stop after this long in all (default: all steps)")
    parser.add_argument("--max-calls", metavar="N", help="stop after this many calls in all")
    parser.add_argument("--mix", default=DEFAULT_MIX, metavar="OP=WEIGHT,...",
                        help="operations and their weights: stats, list, define, lifecycle (default %(default)s)")
    parser.add_argument("--call-timeout", metavar="SECONDS",
                        help="deadline of every libvirt call (default [agent] probe_timeout_seconds)")
    parser.add_argument("--max-guests", default=str(DEFAULT_MAX_GUESTS), metavar="N",
                        help="most test domains the lifecycle calls share (default %(default)s)")
    parser.add_argument("--cleanup-only", action="store_true",
                        help="remove test domains left by earlier soak runs that are no longer running, and exit")


class BadArgument(Exception):
    """An argument that cannot be used: the message names it and says why."""


def _checked(argument: str, value: str, parse):
    """Return parse(value), or raise BadArgument naming the argument, its value and the reason."""
    try:
        return parse(value)
    except ValueError as error:
        raise BadArgument(f"{argument} {value!r}: {error}") from None


def build_plan(args: argparse.Namespace, agent_config):
    """Return the SoakPlan the arguments and the [agent] config describe; raise BadArgument."""
    from collector.soak.plan import SoakPlan, parse_mix, parse_positive, parse_steps

    uri = agent_config.libvirt_uri if args.libvirt_uri is None else args.libvirt_uri
    for flag, key, value in (("--libvirt-uri", "libvirt_uri", uri), ("--host-name", "host_name", args.host_name)):
        reason = None if value is None else check_key("agent", key, value)
        if reason is not None:
            raise BadArgument(f"{flag} {value!r}: {reason}")
    timeout = (agent_config.probe_timeout_seconds if args.call_timeout is None
               else _checked("--call-timeout", args.call_timeout, _bounded(parse_positive, DAY_SECONDS)))
    return SoakPlan(
        uri=uri,
        steps=_checked("--steps", args.steps, parse_steps),
        step_seconds=_checked("--step-seconds", args.step_seconds, _bounded(parse_positive, DAY_SECONDS)),
        duration_seconds=None if args.duration is None else _checked(
            "--duration", args.duration, _bounded(parse_positive, MAX_SOAK_SECONDS)),
        max_calls=None if args.max_calls is None else _checked(
            "--max-calls", args.max_calls, _bounded(lambda text: parse_positive(text, int), MAX_CALLS)),
        mix=_checked("--mix", args.mix, parse_mix),
        call_timeout_seconds=timeout,
        keepalive_interval_seconds=agent_config.keepalive_interval_seconds,
        keepalive_count=agent_config.keepalive_count,
        max_guests=_checked("--max-guests", args.max_guests,
                            _bounded(lambda text: parse_positive(text, int), MAX_GUESTS)),
    )


def _bounded(parse, most: float):
    """Return parse, refusing (ValueError) a result above `most`."""
    def parse_bounded(text: str):
        value = parse(text)
        if value > most:
            raise ValueError(f"must be at most {int(most) if float(most).is_integer() else most}")
        return value

    return parse_bounded


def run_soak(args: argparse.Namespace) -> int:
    """Run the soak (or only the cleanup of earlier runs) and return the exit status."""
    import logging

    from virtwatch.wiring import setup_logging

    setup_logging(logging.WARNING)
    try:
        config = load_config_or_defaults(args.config)
    except ConfigError as error:
        for problem in error.problems:
            print(f"--config {args.config}: {problem}", file=sys.stderr)
        return 2
    try:
        plan = build_plan(args, config.agent)
    except BadArgument as error:
        print(error, file=sys.stderr)
        return 2
    if args.cleanup_only:
        return _cleanup_only(plan)
    from tsdb import StoreError
    from virtwatch.wiring import store_from_config

    try:
        store = store_from_config(config.store, args.store)
    except StoreError as error:
        where = f"--store {args.store!r}" if args.store else "[store] url"
        print(f"{where}: {error}", file=sys.stderr)
        return 2
    try:
        return _soak(plan, store, args.host_name or config.agent.host_name)
    finally:
        store.close()


def _soak(plan, store, host: str) -> int:
    """Run the soak with signal handlers that stop it cleanly; print the table; return the exit status."""
    from collector.soak.report import ProgressLine, daemon_events, format_table, table_rows
    from collector.soak.runner import Soak, SoakError

    soak = Soak(plan, store, host)
    try:
        soak.preflight()
    except SoakError as error:
        print(f"{error.argument}: {error}", file=sys.stderr)
        return 1 if error.argument == "--libvirt-uri" else 2
    progress = ProgressLine(sys.stderr, len(plan.steps), plan.planned_seconds())
    soak.on_tick = progress.update
    stop = threading.Event()
    caught: list[int] = []

    def stop_cleanly(signum, _frame) -> None:
        """Note the signal and let the soak stop, clean up and report."""
        caught.append(signum)
        stop.set()

    previous = {signum: signal.signal(signum, stop_cleanly) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = soak.run(stop)
    finally:
        progress.finish()
        report = soak.cleanup()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(f"soak {result.run_id} of {plan.uri} as host {host!r}, ended by {result.ended_by}; "
          f"{result.points_written} soak points written")
    print(format_table(table_rows(result.steps, daemon_events(store, host, result.steps))), end="")
    for kind, (call, message) in soak.recorder.first_errors.items():
        print(f"first {kind} ({call}): {message}", file=sys.stderr)
    if result.points_lost:
        print(f"store: {result.points_lost} soak points could not be written to {store.display_url}", file=sys.stderr)
    status = 0
    if report.left or report.error:
        print(_leftover_message(plan.uri, report), file=sys.stderr)
        status = 1
    if result.last_step_unanswered():
        last = [step for step in result.steps if step.tally.calls][-1]
        print(f"libvirtd answered no call in the last step ({last.clients} clients): it became unreachable",
              file=sys.stderr)
        status = 1
    return 128 + caught[0] if caught else status


def _leftover_message(uri: str, report) -> str:
    """Say which test domains are left and how to remove them."""
    if report.left:
        names = ", ".join(report.left[:5]) + (", ..." if len(report.left) > 5 else "")
        what = f"{len(report.left)} test domains left behind ({names})"
    else:
        what = "test domains may be left behind"
    why = f": {report.error}" if report.error else ""
    return f"cleanup: {what}{why}; remove them with: virtwatch soak --cleanup-only --libvirt-uri {uri!r}"


def _run_is_alive(mark) -> bool:
    """Whether the soak run that made a domain still runs on this host (its pid is a live virtwatch soak)."""
    if mark.host != socket.gethostname() or mark.pid == os.getpid():
        return False
    try:
        with open(f"/proc/{mark.pid}/cmdline", "rb") as f:
            return b"soak" in f.read()
    except OSError:
        return False


def _cleanup_only(plan) -> int:
    """Remove test domains of soak runs that no longer run; print what was done."""
    from collector.soak.runner import remove_test_domains

    report = remove_test_domains(plan, lambda mark: not _run_is_alive(mark))
    print(f"removed {len(report.removed)} test domains of earlier soak runs from {plan.uri}")
    if report.spared:
        print(f"left {len(report.spared)} test domains of soak runs still running on this host", file=sys.stderr)
    if report.left or report.error:
        print(_leftover_message(plan.uri, report), file=sys.stderr)
        return 1
    return 0
