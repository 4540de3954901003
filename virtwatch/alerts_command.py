"""`virtwatch alerts`: run the alert engine until SIGTERM, or one round with --once.

`--shard I/N` (or `[alerts] shard`) runs shard I of N engines, each owning the hosts whose crc32 % N is I; the
fleet-wide alerts belong to shard 0 (alerts.shard). Every shard, and every replica of one, needs a state_dir of
its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

log = logging.getLogger("virtwatch.alerts")


def add_alerts_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the alert engine's arguments."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file (defaults apply without one)")
    parser.add_argument("--once", action="store_true",
                        help="evaluate the SLOs and rules once, deliver, and exit (1 if a delivery failed)")
    parser.add_argument("--store", metavar="URL", help="store URL (overrides [store] url)")
    parser.add_argument("--shard", metavar="I/N",
                        help="run shard I (from 0) of N engines: the hosts whose crc32 %% N is I, and the fleet-wide "
                             "alerts on shard 0 (overrides [alerts] shard; each shard needs its own state_dir)")


def run_alerts(args: argparse.Namespace) -> int:
    """Run the alert engine; return 0, 1 (--once: evaluation or delivery failed) or 2 (bad config)."""
    import signal
    import threading

    from alerts.state import StateError
    from tsdb import StoreError
    from virtwatch.config import ConfigError, check_key, load_config_or_defaults, print_problems
    from virtwatch.wiring import engine_from_config, setup_logging, store_from_config

    setup_logging()
    try:
        config = load_config_or_defaults(args.config)
    except ConfigError as error:
        return print_problems(args.config, error)
    if args.shard is not None:
        reason = check_key("alerts", "shard", args.shard)
        if reason is not None:
            print(f"--shard {args.shard!r}: {reason}", file=sys.stderr)
            return 2
        config = dataclasses.replace(config, alerts=dataclasses.replace(config.alerts, shard=args.shard))
    try:
        store = store_from_config(config.store, args.store)
    except StoreError as error:
        print(f"store: {error}", file=sys.stderr)
        return 2
    try:
        engine = engine_from_config(config.alerts, store)
    except ConfigError as error:  # the SLO file (SLOError is a ConfigError)
        for problem in error.problems:
            print(f"alerts.slo_file = {str(config.alerts.slo_file)!r}: {problem}", file=sys.stderr)
        store.close()
        return 2
    except (StateError, OSError) as error:
        print(f"alerts.state_dir = {str(config.alerts.state_dir)!r}: {error}", file=sys.stderr)
        store.close()
        return 2
    log.info("alert engine %s; state in %s", describe_shard(engine.shard), config.alerts.state_dir)
    try:
        if args.once:
            report = engine.run_round()
            firing = engine.tracker.firing()
            print(f"shard {engine.shard}: evaluated {report.slos_evaluated} SLOs, {report.rules_evaluated} rule "
                  f"results and {report.leaks_evaluated} hosts' leak signs in {report.seconds:.2f} s; "
                  f"{len(report.transitions)} notifications decided, "
                  f"{report.delivery_failures} failed to deliver; {len(firing)} alerts firing")
            muted = engine.silences.silencing
            for alert in firing:
                why = (" [inhibited by its page]" if engine.tracker.inhibited(alert.labels)
                       else " [silenced]" if muted(alert.labels) else "")
                print(f"  FIRING{why} {alert.name} {dict(sorted(alert.labels.items()))}: "
                      f"{alert.annotations.get('summary', '')}")
            return 1 if report.error or report.delivery_failures else 0
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        engine.run(stop)
        return 0
    finally:
        store.close()


def describe_shard(shard) -> str:
    """Say which hosts and alerts an engine of this shard owns, for its start line."""
    if shard.whole:
        return "shard 0/1: every host and the fleet-wide alerts (the only shard)"
    if shard.owns_fleet:
        return f"shard {shard}: the hosts whose crc32 % {shard.count} is {shard.index}, and the fleet-wide alerts"
    return f"shard {shard}: the hosts whose crc32 % {shard.count} is {shard.index} (the fleet-wide alerts are shard 0's)"
