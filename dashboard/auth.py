"""Optional HTTP basic authentication in front of every route of the app (pages, assets and Dash's /_dash-*)."""

from __future__ import annotations

import base64
import hmac

REALM = "virtwatch"


def credentials_match(header: str | None, username: str, password: str) -> bool:
    """True when an Authorization header carries exactly these basic credentials (constant-time compare)."""
    if not header or not header[:6].lower() == "basic ":
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    given_user, sep, given_password = decoded.partition(":")
    # compare both, always: the time taken does not tell which one was wrong
    user_ok = hmac.compare_digest(given_user.encode("utf-8"), username.encode("utf-8"))
    password_ok = hmac.compare_digest(given_password.encode("utf-8"), password.encode("utf-8"))
    return bool(sep) and user_ok and password_ok


def install_basic_auth(server, username: str, password: str) -> None:
    """Refuse every request to the Flask `server` without the credentials: 401 with WWW-Authenticate."""
    import flask

    @server.before_request
    def _require_credentials():
        if credentials_match(flask.request.headers.get("Authorization"), username, password):
            flask.g.dashboard_user = username
            return None
        return flask.Response("virtwatch dashboard: authentication required\n", status=401, mimetype="text/plain",
                              headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})


def current_user() -> str | None:
    """Return the user the request authenticated as (basic auth), or None without authentication."""
    import flask

    return flask.g.get("dashboard_user") if flask.has_request_context() else None
