"""[dashboard]: the web app, as the config file says it, and the rules on where it may listen without basic auth
(virtwatch.config reads it; virtwatch.wsgi and `virtwatch dashboard` serve the app from it)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dashboard.origins import allowed_host_problem
from tsdb.config_keys import key, listen, literal, not_empty, redacted_repr, split_host_port, type_name

#: the environment variables that supply [dashboard]'s secrets
DASHBOARD_ENV = {"basic_auth_password": "VIRTWATCH_DASHBOARD_BASIC_AUTH_PASSWORD"}


def _allowed_hosts(value: list) -> str | None:
    """Check [dashboard] allowed_hosts: NAME or NAME:PORT ([V6]:PORT) each, as the dashboard reads them."""
    for entry in value:
        reason = (allowed_host_problem(entry) if isinstance(entry, str)
                  else f"expected a string, got {type_name(entry)}")
        if reason:
            return f"{literal(entry)}: {reason}"
    return None


@dataclass(frozen=True, repr=False)
class DashboardConfig:
    """[dashboard]: the web app."""

    listen: str = key("127.0.0.1:8050", kind=str, check=listen)
    allowed_hosts: tuple[str, ...] | None = key(None, kind=list, check=_allowed_hosts)
    allow_unauthenticated_public: bool = key(False, kind=bool)
    basic_auth_username: str | None = key(None, kind=str, check=not_empty)
    basic_auth_password: str | None = key(None, kind=str, check=not_empty, secret=True)
    __repr__ = redacted_repr


def is_loopback(host: str) -> bool:
    """Whether a listen host can be reached from this machine only: a loopback address or localhost."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another name, whatever it resolves to today


def public_listen_problem(listen_at: str, dashboard: DashboardConfig) -> str | None:
    """Return why the dashboard must not listen on this HOST:PORT without basic auth, or None."""
    host, _port = split_host_port(listen_at)
    if is_loopback(host) or dashboard.allow_unauthenticated_public or (
            dashboard.basic_auth_username and dashboard.basic_auth_password):
        return None
    return ("not a loopback address, and [dashboard] sets no basic auth: anyone who reaches it could read the "
            "fleet and silence its pages; set basic_auth_username and basic_auth_password (or, to serve everyone "
            "anyway, allow_unauthenticated_public = true)")


def dashboard_problems(values: Mapping[str, Any], raw: Any) -> list[str]:
    """Return what is wrong across [dashboard]'s keys (values: the good ones read; raw: the table as written):
    basic auth's username and password only together, and no public listen address without it."""
    problems = []
    raw = raw if isinstance(raw, dict) else {}
    have_user = "basic_auth_username" in values or "basic_auth_username" in raw
    have_password = "basic_auth_password" in values or "basic_auth_password" in raw
    if have_user and not have_password:
        problems.append(f"dashboard.basic_auth_password: missing required key when basic_auth_username is set "
                        f"(or set {DASHBOARD_ENV['basic_auth_password']})")
    if have_password and not have_user:
        problems.append("dashboard.basic_auth_username: missing required key when basic_auth_password is set")
    if "listen" in values:  # else the default (loopback) or a listen value already reported
        reason = public_listen_problem(values["listen"], DashboardConfig(**values))
        if reason:
            problems.append(f"dashboard.listen = {literal(values['listen'])}: {reason}")
    return problems
