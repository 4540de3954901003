"""`virtwatch diagnose`: capture a forensics bundle of this host's libvirtd now and print it, for on-call.

It reads what the agent's capture reads (/proc, the admin socket, the daemon log, the kernel log, libvirt's
QEMU pidfiles; gdb with `forensics_gdb = true`), never through a libvirt connection, so it adds no call to a
drowning daemon; each step has its own deadline (`forensics_step_deadline_seconds`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from virtwatch.config import ConfigError, load_config_or_defaults, print_problems


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the diagnose command's arguments."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file: its [agent] says where to look")
    parser.add_argument("--json", action="store_true", help="print the bundle as JSON instead of text")
    parser.add_argument("--no-file", action="store_true",
                        help="do not write the bundle into [agent] forensics_dir")
    parser.add_argument("--write-store", action="store_true",
                        help="also write it into the configured store (trigger `manual`)")


def run_diagnose(args: argparse.Namespace) -> int:
    """Capture one bundle, print it, write its file (and the store's point with --write-store)."""
    from tsdb import StoreError
    from tsdb.forensics import render_bundle
    from virtwatch.wiring import forensics_from_config, store_from_config

    try:
        config = load_config_or_defaults(args.config)
    except ConfigError as error:
        return print_problems(args.config, error)
    agent = config.agent
    capture = forensics_from_config(agent, agent.host_name)
    if args.no_file:
        capture.out_dir = None
    if not agent.daemon_pidfile.exists():
        print(f"note: agent.daemon_pidfile = {str(agent.daemon_pidfile)!r} does not exist; looking for a "
              f"process named libvirtd", file=sys.stderr)
    done = capture.capture("manual", time.time_ns())
    sys.stdout.write(json.dumps(done.bundle, ensure_ascii=False, indent=1) + "\n" if args.json
                     else render_bundle(done.bundle))
    if done.file is not None:
        print(f"bundle written to {done.file}", file=sys.stderr)
    if args.write_store:
        try:
            store = store_from_config(config.store)
            try:
                store.write([done.point])
            finally:
                store.close()
        except StoreError as error:
            print(f"store: {error}", file=sys.stderr)
            return 1
        print(f"bundle written to the store ({config.store.url or 'embedded'})", file=sys.stderr)
    return 0
