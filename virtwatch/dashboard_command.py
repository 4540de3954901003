"""`virtwatch dashboard`: serve the web app with gunicorn on [dashboard] listen (loopback by default)."""

from __future__ import annotations

import argparse
import os
import sys

#: threads per gunicorn worker: a slow store read in one callback does not hold up the others
THREADS_PER_WORKER = 8
#: seconds a request may take before gunicorn restarts its worker
REQUEST_TIMEOUT_SECONDS = 120
#: most gunicorn workers: gunicorn suggests 2-4 per core, and each holds its own store connections
MAX_WORKERS = 256


def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the dashboard's arguments: flags override the config file."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file (defaults apply without one)")
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (overrides [dashboard] listen)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="gunicorn worker processes (default 1; the embedded DuckDB store allows only 1)")


def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard until SIGTERM/SIGINT; return 2 for a bad config or an address that cannot be used."""
    from tsdb.urls import is_embedded_url
    from virtwatch.wsgi import (DashboardConfigError, allowed_hosts_from_config, app_from_config,
                                context_from_config)
    from virtwatch.config import (ConfigError, check_key, is_loopback, load_config_or_defaults, print_problems,
                                  public_listen_problem, split_host_port)
    from virtwatch.wiring import setup_logging

    setup_logging()
    try:
        config = load_config_or_defaults(args.config)
    except ConfigError as error:
        return print_problems(args.config, error)
    listen = args.listen or config.dashboard.listen
    reason = check_key("dashboard", "listen", listen) if args.listen else None
    if reason is None:
        reason = public_listen_problem(listen, config.dashboard)
    if reason is not None:
        where = f"--listen {listen!r}" if args.listen else f"dashboard.listen = {listen!r}"
        print(f"{where}: {reason}", file=sys.stderr)
        return 2
    host, port = split_host_port(listen)
    if not 1 <= args.workers <= MAX_WORKERS:
        print(f"--workers {args.workers}: must be from 1 to {MAX_WORKERS}", file=sys.stderr)
        return 2
    embedded = is_embedded_url(config.store.url)
    if embedded and args.workers > 1:
        print(f"--workers {args.workers}: the embedded DuckDB store serves one process only; use --workers 1 "
              "or an InfluxDB store", file=sys.stderr)
        return 2
    try:  # check the store and the SLO file now, so a mistake is reported here and not by every worker
        context = context_from_config(config)
    except DashboardConfigError as error:
        print(error, file=sys.stderr)
        return 2
    display_url = context.store.display_url
    context.store.close()  # each worker opens its own (DuckDB's file lock allows one holder)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    allowed = ", ".join(allowed_hosts_from_config(config, listen))
    unauthenticated = not (config.dashboard.basic_auth_username and config.dashboard.basic_auth_password)
    if unauthenticated and not is_loopback(host):  # allowed by allow_unauthenticated_public: say so every time
        print(f"warning: dashboard.listen {listen!r}: serving WITHOUT authentication on a non-loopback address "
              "(allow_unauthenticated_public = true): anyone who can reach it can read the fleet and silence its "
              "pages", file=sys.stderr, flush=True)

    from gunicorn.app.base import BaseApplication

    class DashboardServer(BaseApplication):
        """gunicorn serving the dashboard built from the config in each worker."""

        def load_config(self) -> None:
            """Set gunicorn's options (no config file, no command line of its own)."""
            for key, value in {
                "bind": [bind], "workers": args.workers, "worker_class": "gthread", "threads": THREADS_PER_WORKER,
                "timeout": REQUEST_TIMEOUT_SECONDS, "graceful_timeout": 10, "accesslog": None, "errorlog": "-",
                "loglevel": "warning", "proc_name": "virtwatch-dashboard",
                "when_ready": lambda _server: print(f"virtwatch dashboard: serving http://{bind}/ (store "
                                                    f"{display_url}, {args.workers} worker(s); allowed hosts "
                                                    f"{allowed})", flush=True),
            }.items():
                self.cfg.set(key, value)

        def load(self):
            """Build the app in the worker: its own store connection."""
            return app_from_config(config, listen).server

    server = DashboardServer()
    try:
        server.run()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        if code:
            print(f"dashboard.listen = {listen!r}: gunicorn stopped with status {code} (is the address in use?)",
                  file=sys.stderr)
        return code
    return 0
