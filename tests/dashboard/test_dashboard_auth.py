"""Basic authentication in front of every route, and what create_app serves, through Flask's test client."""

from __future__ import annotations

import base64

import pytest

from dashboard.auth import credentials_match
from dashboard.context import DashboardContext


def basic(user: str, password: str) -> str:
    """Return a basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("header, ok", [
    (basic("operator", "pa:ss wörd"), True),
    (basic("operator", "pa:ss"), False),
    (basic("Operator", "pa:ss wörd"), False),
    ("Basic not-base64!", False),
    ("Bearer abc", False),
    (None, False),
    ("Basic " + base64.b64encode(b"no-colon").decode(), False),
])
def test_only_the_exact_credentials_match(header, ok):
    assert credentials_match(header, "operator", "pa:ss wörd") is ok


@pytest.fixture
def app(duckdb_store, tmp_path):
    """The dashboard over an empty DuckDB store with basic auth."""
    from dashboard.app import create_app

    return create_app(DashboardContext(duckdb_store, [], tmp_path), basic_auth=("operator", "pa:ss wörd"))


@pytest.mark.parametrize("path", ["/", "/host/x", "/_dash-layout", "/_dash-dependencies", "/assets/style.css"])
def test_every_route_refuses_a_request_without_credentials(app, path):
    response = app.server.test_client().get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="virtwatch", charset="UTF-8"'
    assert response.headers["X-Frame-Options"] == "DENY"  # a login prompt cannot be framed either


def test_the_right_credentials_open_every_route(app):
    client = app.server.test_client()
    for path in ("/", "/_dash-layout", "/_dash-dependencies", "/assets/style.css"):
        assert client.get(path, headers={"Authorization": basic("operator", "pa:ss wörd")}).status_code == 200
