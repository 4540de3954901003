"""The WSGI entry point for gunicorn: `gunicorn virtwatch.wsgi:server`, configured by $VIRTWATCH_CONFIG.

    VIRTWATCH_CONFIG=/etc/virtwatch/virtwatch.toml gunicorn 'virtwatch.wsgi:server' -b 127.0.0.1:8050 -w 4

It is wiring (a Config turned into a running app), so it lives with the other wiring, above the dashboard package.

`server` is built on first access (each gunicorn worker opens its own store connection), not at import, so
`app_from_config` can be imported by `virtwatch dashboard` without a config in the environment. Requests naming
another host than [dashboard] allowed_hosts get 403 (default: the loopback names and the host of [dashboard]
listen, which gunicorn's own -b does not change: bind elsewhere, and list the names in allowed_hosts).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dash

    from dashboard.context import DashboardContext
    from virtwatch.config import Config

CONFIG_ENV = "VIRTWATCH_CONFIG"


class DashboardConfigError(Exception):
    """The dashboard cannot start from this config; the message names the key or file and the reason."""


def context_from_config(config: Config) -> DashboardContext:
    """Open the configured store and read the SLO file into a DashboardContext; DashboardConfigError if bad."""
    from alerts.slo import load_slos
    from dashboard.context import DashboardContext
    from tsdb import StoreError
    from virtwatch.config import ConfigError
    from virtwatch.wiring import store_from_config

    slos = []
    if config.alerts.slo_file is not None:
        try:
            slos = load_slos(config.alerts.slo_file)
        except ConfigError as error:
            raise DashboardConfigError("\n".join(f"alerts.slo_file = {str(config.alerts.slo_file)!r}: {problem}"
                                                 for problem in error.problems)) from None
    try:
        store = store_from_config(config.store)
    except StoreError as error:
        raise DashboardConfigError(f"store: {error}") from None
    return DashboardContext(store=store, slos=slos, state_dir=config.alerts.state_dir)


def basic_auth_from_config(config: Config) -> tuple[str, str] | None:
    """Return (username, password) when [dashboard] sets both, else None."""
    dashboard = config.dashboard
    if dashboard.basic_auth_username and dashboard.basic_auth_password:
        return dashboard.basic_auth_username, dashboard.basic_auth_password
    return None


def allowed_hosts_from_config(config: Config, listen: str | None = None) -> tuple[str, ...]:
    """Return [dashboard] allowed_hosts, or the loopback names plus the host of `listen` (default: [dashboard]
    listen) when it is not set."""
    from dashboard.origins import default_allowed_hosts
    from virtwatch.config import split_host_port

    if config.dashboard.allowed_hosts is not None:
        return config.dashboard.allowed_hosts
    host, _port = split_host_port(listen or config.dashboard.listen)
    return default_allowed_hosts(host)


def app_from_config(config: Config, listen: str | None = None) -> dash.Dash:
    """Return the dashboard app for a config: its store opened, its SLOs read, basic auth when configured, and
    requests from hosts outside allowed_hosts refused (`listen` is the address served, default [dashboard] listen).
    """
    from dashboard.app import create_app

    return create_app(context_from_config(config), basic_auth=basic_auth_from_config(config),
                      allowed_hosts=allowed_hosts_from_config(config, listen))


def server_from_environment():
    """Return the Flask server of the app configured by the file $VIRTWATCH_CONFIG names."""
    from virtwatch.config import ConfigError, load_config

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise DashboardConfigError(f"{CONFIG_ENV} is not set: set it to the config file, e.g. "
                                   f"{CONFIG_ENV}=/etc/virtwatch/virtwatch.toml")
    try:
        config = load_config(path, os.environ)
    except ConfigError as error:
        raise DashboardConfigError("\n".join(f"{path}: {problem}" for problem in error.problems)) from None
    return app_from_config(config).server


_server = None


def __getattr__(name: str):
    """Build `server` on first access (PEP 562), once per process."""
    global _server
    if name != "server":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _server is None:
        _server = server_from_environment()
    return _server
