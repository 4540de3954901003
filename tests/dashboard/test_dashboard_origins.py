"""The dashboard refuses what a browser on another site can send: a real `virtwatch dashboard` and a real HTTP
client sending the foreign requests (Host and Origin of another site), then the rules one by one."""

from __future__ import annotations

import base64

import pytest
from dashboard_servers import planted_now, start_server
from dash_requests import create_silence_body, post

from dashboard.origins import (FRAME_HEADERS, AllowedHosts, allowed_host_problem, default_allowed_hosts,
                               parse_allowed_host, refusal)

FOREIGN = "rebind.attacker.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`virtwatch dashboard` on 127.0.0.1 over an empty DuckDB store, allowed_hosts left at its default."""
    work = tmp_path_factory.mktemp("dashboard-origins")
    state_dir = work / "alerts"
    config = work / "virtwatch.toml"
    config.write_text(f'[store]\nurl = "duckdb://{work}/store.duckdb"\n[alerts]\nstate_dir = "{state_dir}"\n')
    server = start_server(config, work, state_dir, planted_now())
    yield server
    server.stop()


def silences_made(server, comment: str) -> list:
    """Return the silences in the server's state dir with this comment."""
    from alerts.paths import silences_path
    from alerts.silences import SilenceStore

    return [s for s in SilenceStore(silences_path(server.state_dir)).list(include_expired=True)
            if s.comment == comment]


def own(server) -> str:
    """Return the server's own host:port, as a browser on its page sends it."""
    return server.url.removeprefix("http://")


@pytest.mark.slow
@pytest.mark.parametrize("headers, reason", [
    ({"Host": f"{FOREIGN}:PORT", "Origin": f"http://{FOREIGN}:PORT"}, f"Host '{FOREIGN}:PORT' is not an allowed host"),
    ({"Host": "OWN", "Origin": f"http://{FOREIGN}"}, f"Origin 'http://{FOREIGN}' is not an allowed host"),
    ({"Host": "OWN", "Referer": f"https://{FOREIGN}/page"}, f"Referer 'https://{FOREIGN}/page' is not an allowed host"),
    ({"Host": "OWN", "Origin": "null"}, "Origin 'null' is not an allowed host"),
    ({"Host": "OWN"}, "a POST request needs an Origin or Referer header naming an allowed host"),
], ids=["a rebound name in Host and Origin", "a foreign Origin", "a foreign Referer without Origin",
        "an opaque Origin", "neither Origin nor Referer"])
def test_a_foreign_request_to_create_a_silence_gets_403_and_writes_nothing(server, headers, reason):
    port = own(server).rsplit(":", 1)[1]
    headers = {k: v.replace("OWN", own(server)).replace("PORT", port) for k, v in headers.items()}
    comment = f"foreign {sorted(headers)}"
    status, response_headers, body = post(server.url, create_silence_body("alertname=~.+", comment), headers)
    assert status == 403
    assert reason.replace("PORT", port) in body.decode()
    assert response_headers["x-frame-options"] == "DENY"
    assert silences_made(server, comment) == []


@pytest.mark.slow
def test_the_same_request_from_the_dashboards_own_page_creates_the_silence(server):
    headers = {"Host": own(server), "Origin": server.url}
    status, _, body = post(server.url, create_silence_body("alertname=~.+", "own origin"), headers)
    assert status == 200 and b"created until" in body
    [made] = silences_made(server, "own origin")
    assert made.created_by == "mallory"  # no login: the form's author


@pytest.mark.slow
def test_localhost_and_a_referer_of_the_own_page_are_allowed_too(server):
    port = own(server).rsplit(":", 1)[1]
    headers = {"Host": f"localhost:{port}", "Referer": f"http://localhost:{port}/alerts?range=6h"}
    status, _, _ = post(server.url, create_silence_body("host=kvm-01", "by referer"), headers)
    assert status == 200 and len(silences_made(server, "by referer")) == 1


@pytest.mark.slow
def test_a_page_asked_for_by_a_rebound_name_is_refused(server):
    port = own(server).rsplit(":", 1)[1]
    status, _, body = post(server.url, {}, {"Host": f"{FOREIGN}:{port}"}, path="/", method="GET")
    assert status == 403 and b"is not an allowed host" in body


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/", "/alerts", "/_dash-layout", "/_dash-dependencies", "/assets/style.css",
                                  "/no/such/page"])
def test_every_response_forbids_framing(server, path):
    status, headers, _ = post(server.url, {}, {"Host": own(server)}, path=path, method="GET")
    assert status in (200, 404)
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"] == "frame-ancestors 'none'"


@pytest.mark.slow
def test_a_silence_is_created_by_the_logged_in_user_whatever_the_form_says(auth_dashboard_server):
    from alerts.paths import silences_path
    from alerts.silences import SilenceStore

    server = auth_dashboard_server
    credentials = base64.b64encode(b"operator:s3cret:p4ss w0rd").decode()
    headers = {"Host": own(server), "Origin": server.url, "Authorization": f"Basic {credentials}"}
    body = create_silence_body("host=kvm-hung-02", "logged in", created_by="someone-else")
    status, _, _ = post(server.url, body, headers)
    assert status == 200
    store = SilenceStore(silences_path(server.state_dir))
    [made] = [s for s in store.list() if s.comment == "logged in"]
    assert made.created_by == "operator"
    store.expire(made.id)


@pytest.mark.slow
def test_a_foreign_origin_is_refused_even_with_the_right_credentials(auth_dashboard_server):
    server = auth_dashboard_server
    credentials = base64.b64encode(b"operator:s3cret:p4ss w0rd").decode()  # a browser sends them cross-site too
    headers = {"Host": own(server), "Origin": f"https://{FOREIGN}", "Authorization": f"Basic {credentials}"}
    status, _, _ = post(server.url, create_silence_body("alertname=~.+", "cross-site with auth"), headers)
    assert status == 403


# ---- the rules, request by request ----

ALLOWED = AllowedHosts([*default_allowed_hosts("10.0.0.5"), "virtwatch.example.com", "proxy.example.com:443"])

REQUESTS = {
    "a GET from the dashboard's own host":
        ("GET", {"Host": "127.0.0.1:8050"}, None),
    "a GET linked from another site (a Referer of its own)":
        ("GET", {"Host": "127.0.0.1:8050", "Referer": "https://elsewhere.example/"}, None),
    "a GET by a name the attacker resolves to loopback":
        ("GET", {"Host": "attacker.example:8050"}, "Host 'attacker.example:8050' is not an allowed host"),
    "a GET without Host":
        ("GET", {}, "Host None is not an allowed host"),
    "a POST from the own page":
        ("POST", {"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:8050"}, None),
    "a POST from localhost to 127.0.0.1 (both loopback names)":
        ("POST", {"Host": "127.0.0.1:8050", "Origin": "http://localhost:8050"}, None),
    "a POST from the IPv6 loopback in another spelling":
        ("POST", {"Host": "[::1]:8050", "Origin": "http://[0:0::1]:8050"}, None),
    "a POST from the listen address":
        ("POST", {"Host": "10.0.0.5:8050", "Origin": "http://10.0.0.5:8050"}, None),
    "names compare without case and trailing dot":
        ("POST", {"Host": "VirtWatch.Example.COM.", "Origin": "https://virtwatch.example.com."}, None),
    "a POST from another site":
        ("POST", {"Host": "127.0.0.1:8050", "Origin": "https://attacker.example"},
         "Origin 'https://attacker.example' is not an allowed host"),
    "a name that only starts like an allowed one":
        ("POST", {"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1.attacker.example"},
         "Origin 'http://127.0.0.1.attacker.example' is not an allowed host"),
    "a user part before the foreign host":
        ("POST", {"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1@attacker.example"},
         "Origin 'http://127.0.0.1@attacker.example' is not an allowed host"),
    "a Host header with a user part":
        ("POST", {"Host": "127.0.0.1@attacker.example", "Origin": "http://127.0.0.1"},
         "Host '127.0.0.1@attacker.example' is not an allowed host"),
    "an Origin of another scheme":
        ("POST", {"Host": "127.0.0.1:8050", "Origin": "file://"}, "Origin 'file://' is not an allowed host"),
    "a port given with the name must match: https without a port is 443":
        ("POST", {"Host": "proxy.example.com", "Origin": "https://proxy.example.com"}, None),
    "a Host without a port may be http's or https's (a proxy in front may have ended TLS)":
        ("GET", {"Host": "proxy.example.com"}, None),
    "a Host with another port than the one allowed":
        ("GET", {"Host": "proxy.example.com:8443"}, "Host 'proxy.example.com:8443' is not an allowed host"),
    "a port given with the name must match: http without a port is 80, not 443":
        ("POST", {"Host": "127.0.0.1", "Origin": "http://proxy.example.com"},
         "Origin 'http://proxy.example.com' is not an allowed host"),
    "a port given with the name must match: another port is another site":
        ("POST", {"Host": "127.0.0.1", "Origin": "https://proxy.example.com:8443"},
         "Origin 'https://proxy.example.com:8443' is not an allowed host"),
    "the Referer counts when there is no Origin":
        ("DELETE", {"Host": "127.0.0.1", "Referer": "http://localhost:8050/alerts"}, None),
    "the Origin wins over an allowed Referer":
        ("PUT", {"Host": "127.0.0.1", "Origin": "https://attacker.example", "Referer": "http://localhost/"},
         "Origin 'https://attacker.example' is not an allowed host"),
}


@pytest.mark.parametrize("method, headers, reason", REQUESTS.values(), ids=REQUESTS.keys())
def test_which_requests_are_refused_and_why(method, headers, reason):
    assert refusal(method, headers, ALLOWED) == reason


@pytest.mark.parametrize("entry, parsed", [
    ("virtwatch.example.com", ("virtwatch.example.com", None)),
    ("Virtwatch.Example.com.:8443", ("virtwatch.example.com", 8443)),
    ("::1", ("::1", None)),
    ("[0:0::1]:8050", ("::1", 8050)),
    ("10.0.0.5", ("10.0.0.5", None)),
])
def test_an_allowed_host_is_a_name_with_or_without_a_port(entry, parsed):
    assert parse_allowed_host(entry) == parsed


@pytest.mark.parametrize("entry, words", [
    ("http://virtwatch.example.com", "no scheme, no path"),
    ("virtwatch.example.com/alerts", "no scheme, no path"),
    ("host:0", "port must be from 1 to 65535"),
    ("[12345::]:80", "is not an IPv6 address"),
    ("two words", "expected NAME"),
    ("", "expected NAME"),
])
def test_a_bad_allowed_host_is_refused_saying_why(entry, words):
    assert words in allowed_host_problem(entry)


def test_the_default_is_the_loopback_names_plus_the_listen_host():
    assert default_allowed_hosts("10.0.0.5") == ("127.0.0.1", "localhost", "::1", "10.0.0.5")
    assert default_allowed_hosts("127.0.0.1") == ("127.0.0.1", "localhost", "::1")


def test_allowed_hosts_from_the_config_replace_the_default(tmp_path):
    from virtwatch.wsgi import allowed_hosts_from_config
    from virtwatch.config import config_from_dict

    listen_only = config_from_dict({"dashboard": {"listen": "127.0.0.1:8050"}}, {})
    assert allowed_hosts_from_config(listen_only, "[::1]:9000") == ("127.0.0.1", "localhost", "::1")
    named = config_from_dict({"dashboard": {"allowed_hosts": ["virtwatch.example.com"]}}, {})
    assert allowed_hosts_from_config(named) == ("virtwatch.example.com",)


def test_an_app_with_its_own_allowed_hosts_refuses_loopback_names_it_does_not_list(duckdb_store, tmp_path):
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    app = create_app(DashboardContext(duckdb_store, [], tmp_path), allowed_hosts=["virtwatch.example.com"])
    client = app.server.test_client()
    assert client.get("/", headers={"Host": "virtwatch.example.com"}).status_code == 200
    refused = client.get("/", headers={"Host": "localhost"})
    assert refused.status_code == 403
    assert dict(refused.headers).items() >= FRAME_HEADERS.items()
