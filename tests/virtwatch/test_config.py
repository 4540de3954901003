"""Tests of virtwatch.config: defaults, every kind of problem, environment secrets, redaction."""

import dataclasses
import re
import socket
from pathlib import Path

import platformdirs
import pytest

from virtwatch.config import (
    PAGERDUTY_EVENTS_URL, SECTIONS, AgentConfig, AlertsConfig, Config, ConfigError, DashboardConfig,
    ReceiverConfig, StoreConfig, check_key, is_loopback, load_config, receiver_env_var, split_host_port,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "virtwatch.example.toml"


def write(tmp_path, text, name="virtwatch.toml"):
    """Write a config file and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path, text, environ=None):
    """Load text as a config that must be bad; return its problems."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ or {})
    return caught.value.problems


# ---- the example and the defaults ----


def test_the_example_file_validates():
    config = load_config(EXAMPLE, {})
    assert config.store.url == "influxdb://virtwatch@influx.example.internal:8086/virtwatch"
    assert [r.name for r in config.alerts.receivers] == ["ops-webhook", "oncall-pagerduty"]


def test_the_example_file_names_every_key_of_every_dataclass():
    text = EXAMPLE.read_text()
    for section, cls in SECTIONS.items():
        assert re.search(rf"^\[{section}\]$", text, re.M), section
        for f in dataclasses.fields(cls):
            if f.name != "receivers":
                assert re.search(rf"^#? ?{f.name} = |^\[{section}\.{f.name}\]$", text, re.M), f"{section}.{f.name}"
    for f in dataclasses.fields(ReceiverConfig):
        assert re.search(rf"^#? ?{f.name} = |^#   {f.name} ", text, re.M), f"receivers.{f.name}"


def test_the_example_file_uses_only_example_hostnames():
    hosts = re.findall(r"://(?:[^@/\s\"]+@)?([A-Za-z0-9.-]+)", EXAMPLE.read_text())
    assert hosts
    for host in hosts:
        placeholder = host.isupper() or host == "openstack.org"  # HOST in a URL form; Nova's XML namespace
        assert placeholder or host.endswith(("example.com", "example.internal", "pagerduty.com")) or host in (
            "system", ""), host


def test_an_empty_file_gives_all_defaults(tmp_path):
    config = load_config(write(tmp_path, ""), {})
    data = Path(platformdirs.user_data_dir("virtwatch"))
    assert config == Config()
    assert config.store == StoreConfig(url=None, token=None, username=None, password=None, batch_size=5000,
                                       timeout_seconds=10.0, max_retries=5, gzip=True)
    assert config.agent == AgentConfig(
        libvirt_uri="qemu:///system", host_name=socket.gethostname(), interval_seconds=10.0,
        probe_timeout_seconds=5.0, keepalive_interval_seconds=5, keepalive_count=5, admin_uri=None,
        daemon_pidfile=Path("/run/libvirtd.pid"), daemon_log_file=None, spool_dir=data / "spool",
        spool_max_bytes=256 * 1024 * 1024, metrics_listen=None)
    assert config.alerts == AlertsConfig(interval_seconds=30.0, state_dir=data / "alerts", slo_file=None,
                                         receivers=())
    assert config.dashboard == DashboardConfig(listen="127.0.0.1:8050", basic_auth_username=None,
                                               basic_auth_password=None)


def test_empty_sections_give_all_defaults(tmp_path):
    assert load_config(write(tmp_path, "[store]\n[agent]\n[alerts]\n[dashboard]\n"), {}) == Config()


def test_the_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, ""), {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.agent.interval_seconds = 1


def test_ints_are_accepted_where_numbers_are_expected_and_become_floats(tmp_path):
    config = load_config(write(tmp_path, "[agent]\ninterval_seconds = 3\n"), {})
    assert config.agent.interval_seconds == 3.0 and isinstance(config.agent.interval_seconds, float)


def test_relative_paths_are_taken_from_the_config_files_directory(tmp_path):
    path = write(tmp_path, '[agent]\nspool_dir = "spool"\n[alerts]\nslo_file = "slo.toml"\n'
                           'state_dir = "/var/lib/virtwatch/alerts"\n')
    config = load_config(path, {})
    assert config.agent.spool_dir == tmp_path / "spool"
    assert config.alerts.slo_file == tmp_path / "slo.toml"
    assert config.alerts.state_dir == Path("/var/lib/virtwatch/alerts")


def test_a_pagerduty_receiver_defaults_its_url_to_the_events_api(tmp_path):
    config = load_config(write(tmp_path, '[[alerts.receivers]]\nname = "pd"\ntype = "pagerduty"\n'
                                         'routing_key = "k"\n'), {})
    assert config.alerts.receivers == (ReceiverConfig(name="pd", type="pagerduty", url=PAGERDUTY_EVENTS_URL,
                                                      routing_key="k"),)


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:8050", ("127.0.0.1", 8050)),
    ("[::1]:9177", ("::1", 9177)),
    ("dash.example.internal:80", ("dash.example.internal", 80)),
])
def test_a_listen_address_splits_into_host_and_port(value, expected):
    assert split_host_port(value) == expected


# ---- every kind of problem names the key, the value and the reason ----

BAD_VALUES = {
    "an unknown section is named":
        ("[colours]\nred = 1\n", "colours: unknown section"),
    "a section that is not a table is named":
        ('store = "influxdb://x"\n', 'store = "influxdb://x": expected a table, got a string'),
    "an unknown key is named":
        ("[store]\ncolour = 1\n", "store.colour: unknown key"),
    "a near-miss key gets a suggestion":
        ("[agent]\ninterval_second = 1\n", "agent.interval_second: unknown key (did you mean interval_seconds?)"),
    "a string where a number belongs is named":
        ('[agent]\ninterval_seconds = "10"\n', 'agent.interval_seconds = "10": expected a number, got a string'),
    "a boolean is not an integer":
        ("[store]\nbatch_size = true\n", "store.batch_size = true: expected an integer, got a boolean"),
    "a boolean is not a number":
        ("[store]\ntimeout_seconds = false\n", "store.timeout_seconds = false: expected a number, got a boolean"),
    "a float is not an integer":
        ("[agent]\nspool_max_bytes = 1.5\n", "agent.spool_max_bytes = 1.5: expected an integer, got a float"),
    "a string is not a boolean":
        ('[store]\ngzip = "yes"\n', 'store.gzip = "yes": expected a boolean, got a string'),
    "a number is not a string":
        ("[agent]\nlibvirt_uri = 5\n", "agent.libvirt_uri = 5: expected a string, got an integer"),
    "a table is not a path and its contents are not shown":
        ("[agent]\nspool_dir = {a = 1}\n", "agent.spool_dir = {...}: expected a path string, got a table"),
    "a zero interval is refused":
        ("[alerts]\ninterval_seconds = 0\n",
         "alerts.interval_seconds = 0: must be from 0.1 to 86400 seconds (at most a day)"),
    "a negative timeout is refused":
        ("[store]\ntimeout_seconds = -1.5\n",
         "store.timeout_seconds = -1.5: must be from 0.1 to 86400 seconds (at most a day)"),
    "a non-finite timeout is refused":
        ("[agent]\nprobe_timeout_seconds = inf\n", "agent.probe_timeout_seconds = inf: must be a finite number"),
    "a zero batch size is refused":
        ("[store]\nbatch_size = 0\n", "store.batch_size = 0: must be from 1 to 100000"),
    "negative retries are refused":
        ("[store]\nmax_retries = -1\n", "store.max_retries = -1: must be from 0 to 100"),
    "an empty host name is refused":
        ('[agent]\nhost_name = ""\n', 'agent.host_name = "": must not be empty'),
    "a listen address without a port is refused":
        ('[dashboard]\nlisten = "nonsense"\n', 'dashboard.listen = "nonsense": expected HOST:PORT'),
    "a listen port out of range is refused":
        ('[agent]\nmetrics_listen = "127.0.0.1:70000"\n',
         'agent.metrics_listen = "127.0.0.1:70000": expected HOST:PORT with PORT from 0 to 65535'),
    "a store url with another scheme is refused":
        ('[store]\nurl = "http://influx.example.internal:8086"\n',
         "store.url = \"http://influx.example.internal:8086\": unknown scheme 'http'; expected one of influxdb, "
         "influxdbs, influxdb2, influxdb2s, duckdb"),
    "a store url without a scheme is refused":
        ('[store]\nurl = "influx.example.internal:8086"\n',
         'store.url = "influx.example.internal:8086": expected SCHEME://..., for example '
         'influxdb://HOST:8086/DATABASE or duckdb:///ABSOLUTE/PATH'),
    "an unknown receiver type is refused":
        ('[[alerts.receivers]]\nname = "a"\ntype = "webhook"\nurl = "https://hooks.example.com/a"\n'
         '[[alerts.receivers]]\nname = "b"\ntype = "email"\n',
         'alerts.receivers[1].type = "email": must be one of webhook, alertmanager, pagerduty, slack'),
    "a receiver without a name is refused":
        ('[[alerts.receivers]]\ntype = "alertmanager"\nurl = "http://am.example.internal:9093"\n',
         "alerts.receivers[0].name: missing required key"),
    "a receiver without a type is refused":
        ('[[alerts.receivers]]\nname = "a"\nurl = "http://am.example.internal:9093"\n',
         "alerts.receivers[0].type: missing required key"),
    "an unknown receiver key is named":
        ('[[alerts.receivers]]\nname = "a"\ntype = "alertmanager"\nurl = "http://am.example.internal:9093"\n'
         'colour = "red"\n', "alerts.receivers[0].colour: unknown key"),
    "a non-http receiver url is refused":
        ('[[alerts.receivers]]\nname = "am"\ntype = "alertmanager"\nurl = "ftp://am.example.internal:9093"\n',
         'alerts.receivers[0].url = "ftp://am.example.internal:9093": must be an http:// or https:// URL'),
    "a receiver without a url names the env var that could supply it":
        ('[[alerts.receivers]]\nname = "team-am"\ntype = "alertmanager"\n',
         "alerts.receivers[0].url: missing required key for a receiver of type alertmanager "
         "(or set VIRTWATCH_RECEIVER_TEAM_AM_URL)"),
    "a pagerduty receiver without a routing key names the env var that could supply it":
        ('[[alerts.receivers]]\nname = "pd"\ntype = "pagerduty"\n',
         "alerts.receivers[0].routing_key: missing required key for a receiver of type pagerduty "
         "(or set VIRTWATCH_RECEIVER_PD_ROUTING_KEY)"),
    "a routing key on a webhook is refused":
        ('[[alerts.receivers]]\nname = "w"\ntype = "webhook"\nurl = "https://hooks.example.com/w"\n'
         'routing_key = "k"\n',
         "alerts.receivers[0].routing_key: not used by a receiver of type webhook (only by pagerduty)"),
    "duplicate receiver names are refused":
        ('[[alerts.receivers]]\nname = "ops"\ntype = "alertmanager"\nurl = "http://am.example.internal:9093"\n'
         '[[alerts.receivers]]\nname = "ops"\ntype = "alertmanager"\nurl = "http://am.example.internal:9093"\n',
         'alerts.receivers[1].name = "ops": duplicate of alerts.receivers[0].name'),
    "receiver names that share environment variables are refused":
        ('[[alerts.receivers]]\nname = "ops-am"\ntype = "alertmanager"\nurl = "http://am.example.internal"\n'
         '[[alerts.receivers]]\nname = "ops_am"\ntype = "alertmanager"\nurl = "http://am.example.internal"\n',
         'alerts.receivers[1].name = "ops_am": shares the environment variables VIRTWATCH_RECEIVER_OPS_AM_* '
         'with alerts.receivers[0] ("ops-am")'),
    "receivers that are not an array of tables are refused":
        ("[alerts.receivers]\nname = 1\n",
         "alerts.receivers = {...}: expected an array of tables ([[alerts.receivers]]), got a table"),
    "a NUL in a path is refused":
        ('[agent]\nspool_dir = "/var/lib/\\u0000spool"\n',
         'agent.spool_dir = "/var/lib/\\u0000spool": must not contain a NUL character'),
    "a NUL in a metadata tag is refused":
        ('[agent.metadata_tags]\nname = "http://openstack.org/xmlns/libvirt/nova/1.1 na\\u0000me"\n',
         "agent.metadata_tags = {...}: tag 'name': must not contain a NUL character"),
    "an interval below a tenth of a second is refused":
        ("[agent]\ninterval_seconds = 1e-300\n",
         "agent.interval_seconds = 1e-300: must be from 0.1 to 86400 seconds (at most a day)"),
    "a window beyond 30 days is refused":
        ("[alerts]\nrestarts_window_seconds = 2592001\n",
         "alerts.restarts_window_seconds = 2592001: must be from 0.1 to 2592000 seconds (at most 30 days)"),
    "an integer too large for a float is refused where a number belongs":
        (f"[store]\ntimeout_seconds = {10**400}\n", f"store.timeout_seconds = {10**400}: must be a finite number"),
    "a keepalive count beyond its bound is refused":
        ("[agent]\nkeepalive_count = 1001\n", "agent.keepalive_count = 1001: must be from 0 to 1000"),
    "a store url with port 0 is refused":
        ('[store]\nurl = "influxdb://h:0/db"\n',
         'store.url = "influxdb://h:0/db": the port is not a number from 1 to 65535'),
    "allowed hosts that are not an array are refused":
        ('[dashboard]\nallowed_hosts = "localhost"\n',
         'dashboard.allowed_hosts = "localhost": expected an array of strings, got a string'),
    "an allowed host with a scheme is refused naming it":
        ('[dashboard]\nallowed_hosts = ["localhost", "https://virtwatch.example.com"]\n',
         'dashboard.allowed_hosts = [...]: "https://virtwatch.example.com": expected NAME, NAME:PORT or '
         '[IPv6]:PORT (no scheme, no path), e.g. "virtwatch.example.com" or "10.0.0.5:8050"'),
    "an allowed host that is not a string is refused":
        ('[dashboard]\nallowed_hosts = [8050]\n',
         "dashboard.allowed_hosts = [...]: 8050: expected a string, got an integer"),
    "a public listen address without basic auth is refused":
        ('[dashboard]\nlisten = "0.0.0.0:8050"\n',
         'dashboard.listen = "0.0.0.0:8050": not a loopback address, and [dashboard] sets no basic auth: anyone '
         "who reaches it could read the fleet and silence its pages; set basic_auth_username and "
         "basic_auth_password (or, to serve everyone anyway, allow_unauthenticated_public = true)"),
    "a basic-auth user without a password is refused":
        ('[dashboard]\nbasic_auth_username = "operator"\n',
         "dashboard.basic_auth_password: missing required key when basic_auth_username is set "
         "(or set VIRTWATCH_DASHBOARD_BASIC_AUTH_PASSWORD)"),
}


@pytest.mark.parametrize("text, problem", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_each_kind_of_problem_is_reported_with_key_value_and_reason(tmp_path, text, problem):
    assert problem in problems_of(tmp_path, text)


NUMBER_KEYS = [(section, f.name, f.metadata["kind"]) for section, cls in SECTIONS.items()
               for f in dataclasses.fields(cls) if f.metadata.get("kind") in (int, float)] + [
    ("receiver", f.name, f.metadata["kind"]) for f in dataclasses.fields(ReceiverConfig)
    if f.metadata.get("kind") in (int, float)]


@pytest.mark.parametrize("section, key, kind", NUMBER_KEYS, ids=[f"{s}.{k}" for s, k, _ in NUMBER_KEYS])
def test_every_number_has_a_sane_range(section, key, kind):
    cls = ReceiverConfig if section == "receiver" else SECTIONS[section]
    check = {f.name: f for f in dataclasses.fields(cls)}[key].metadata["check"]
    assert check is not None
    for absurd in (10**26, -(10**26), *((1e308, -1e308) if kind is float else ())):
        assert check(absurd), f"{section}.{key} = {absurd} passed"
    assert check(getattr(cls, key)) is None if section != "receiver" else check(10.0) is None  # its default


def test_values_at_the_bounds_are_accepted(tmp_path):
    config = load_config(write(tmp_path, "[store]\ntimeout_seconds = 86400\nmax_retries = 0\n"
                                         "[agent]\ninterval_seconds = 0.1\nspool_max_bytes = 1099511627776\n"
                                         "keepalive_interval_seconds = 86400\nkeepalive_count = 1000\n"
                                         "forensics_min_gap_seconds = 0\n"
                                         "[alerts]\nrepeat_interval_seconds = 2592000\nstorm_share = 1\n"), {})
    assert (config.agent.interval_seconds, config.agent.spool_max_bytes) == (0.1, 1024**4)
    assert config.alerts.repeat_interval_seconds == 30 * 86400.0


def test_a_flag_is_checked_as_its_key_would_be():
    assert check_key("agent", "interval_seconds", 0.05) == "must be from 0.1 to 86400 seconds (at most a day)"
    assert check_key("agent", "interval_seconds", float("nan")) == "must be a finite number"
    assert check_key("agent", "host_name", "") == "must not be empty"
    assert "the host is not a name or an address" in check_key("store", "url", "influxdb://u:pw@[::1/db")
    assert check_key("agent", "interval_seconds", 10.0) is None


def test_the_dashboard_keys_default_to_loopback_and_no_public_serving(tmp_path):
    config = load_config(write(tmp_path, ""), {})
    assert config.dashboard.allowed_hosts is None and config.dashboard.allow_unauthenticated_public is False
    config = load_config(write(tmp_path, '[dashboard]\nlisten = "0.0.0.0:8050"\nallow_unauthenticated_public = true\n'
                                         'allowed_hosts = ["virtwatch.example.com", "[::1]:8050"]\n'), {})
    assert config.dashboard.allowed_hosts == ("virtwatch.example.com", "[::1]:8050")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True),
                                             ("localhost", True), ("LOCALHOST.", True), ("0.0.0.0", False),
                                             ("::", False), ("10.0.0.5", False), ("kvm-node-17", False)])
def test_only_loopback_addresses_and_localhost_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_several_problems_are_all_reported_at_once(tmp_path):
    problems = problems_of(tmp_path, '[store]\ncolour = 1\nbatch_size = true\n'
                                     '[agent]\ninterval_seconds = "10"\n'
                                     '[dashboard]\nlisten = "nonsense"\n'
                                     '[[alerts.receivers]]\ntype = "email"\n')
    assert problems == [
        "store.colour: unknown key",
        "store.batch_size = true: expected an integer, got a boolean",
        'agent.interval_seconds = "10": expected a number, got a string',
        'alerts.receivers[0].type = "email": must be one of webhook, alertmanager, pagerduty, slack',
        "alerts.receivers[0].name: missing required key",
        'dashboard.listen = "nonsense": expected HOST:PORT',
    ]


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, '[agent]\ninterval_seconds = 10\nhost_name = \n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [f"TOML syntax error in {path} at line 3, column 13: Invalid value"]


def test_a_missing_file_is_reported(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [f"cannot read {path}: No such file or directory"]


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert caught.value.problems == [f"cannot read {tmp_path}: Is a directory"]


def test_a_file_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[agent]\nhost_name = "k\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [f"cannot read {path}: not UTF-8 text at line 2"]


def test_the_error_message_prefixes_each_problem_with_the_file(tmp_path):
    path = write(tmp_path, "[store]\ncolour = 1\nshade = 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value) == f"{path}: store.colour: unknown key\n{path}: store.shade: unknown key"


# ---- secrets from the environment ----

RECEIVERS = '''
[[alerts.receivers]]
name = "ops-webhook"
type = "webhook"
url = "https://hooks.example.com/from-file"
secret = "file-secret"

[[alerts.receivers]]
name = "oncall.pd"
type = "pagerduty"
routing_key = "file-routing-key"
'''


def test_environment_secrets_override_the_file(tmp_path):
    path = write(tmp_path, '[store]\ntoken = "file-token"\nusername = "file-user"\npassword = "file-pw"\n'
                           '[dashboard]\nbasic_auth_username = "operator"\nbasic_auth_password = "file-pw"\n'
                 + RECEIVERS)
    environ = {
        "VIRTWATCH_STORE_TOKEN": "env-token", "VIRTWATCH_STORE_USERNAME": "env-user",
        "VIRTWATCH_STORE_PASSWORD": "env-pw", "VIRTWATCH_DASHBOARD_BASIC_AUTH_PASSWORD": "env-dash-pw",
        "VIRTWATCH_RECEIVER_OPS_WEBHOOK_URL": "https://hooks.example.com/from-env",
        "VIRTWATCH_RECEIVER_OPS_WEBHOOK_SECRET": "env-secret",
        "VIRTWATCH_RECEIVER_ONCALL_PD_ROUTING_KEY": "env-routing-key",
    }
    config = load_config(path, environ)
    assert (config.store.token, config.store.username, config.store.password) == ("env-token", "env-user", "env-pw")
    assert config.dashboard.basic_auth_password == "env-dash-pw"
    webhook, pagerduty = config.alerts.receivers
    assert (webhook.url, webhook.secret) == ("https://hooks.example.com/from-env", "env-secret")
    assert (pagerduty.url, pagerduty.routing_key) == (PAGERDUTY_EVENTS_URL, "env-routing-key")


def test_environment_secrets_fill_keys_missing_from_the_file(tmp_path):
    path = write(tmp_path, '[[alerts.receivers]]\nname = "team chat"\ntype = "slack"\n'
                           '[[alerts.receivers]]\nname = "pd"\ntype = "pagerduty"\n')
    config = load_config(path, {"VIRTWATCH_RECEIVER_TEAM_CHAT_URL": "https://hooks.slack.com/services/T/B/X",
                                "VIRTWATCH_RECEIVER_PD_ROUTING_KEY": "rk"})
    assert config.alerts.receivers[0].url == "https://hooks.slack.com/services/T/B/X"
    assert config.alerts.receivers[1].routing_key == "rk"


def test_an_empty_environment_variable_counts_as_unset(tmp_path):
    config = load_config(write(tmp_path, '[store]\ntoken = "file-token"\n'), {"VIRTWATCH_STORE_TOKEN": ""})
    assert config.store.token == "file-token"


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path):
    problems = problems_of(tmp_path, '[[alerts.receivers]]\nname = "am"\ntype = "alertmanager"\n',
                           {"VIRTWATCH_RECEIVER_AM_URL": "am.example.internal:9093"})
    assert problems == ['alerts.receivers[0].url (from VIRTWATCH_RECEIVER_AM_URL) = "am.example.internal:9093": '
                        "must be an http:// or https:// URL"]


@pytest.mark.parametrize("name, key, variable", [
    ("ops-webhook", "url", "VIRTWATCH_RECEIVER_OPS_WEBHOOK_URL"),
    ("oncall.pd", "routing_key", "VIRTWATCH_RECEIVER_ONCALL_PD_ROUTING_KEY"),
    ("équipe", "secret", "VIRTWATCH_RECEIVER__QUIPE_SECRET"),
])
def test_a_receivers_environment_variable_is_its_name_upper_cased_with_underscores(name, key, variable):
    assert receiver_env_var(name, key) == variable


# ---- secrets never leak ----

SECRETS = ["s3cr3t-token", "s3cr3t-pw", "s3cr3t-hmac", "s3cr3t-rk", "s3cr3t-slack", "s3cr3t-dash", "s3cr3t-path",
           "s3cr3t-query", "s3cr3t-userinfo"]


def assert_no_secret_in(text):
    """Fail if any of SECRETS appears in text."""
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{leaked} leaked into: {text}"


def test_secrets_never_appear_in_error_messages(tmp_path):
    problems = problems_of(tmp_path, '''
[store]
url = "http://admin:s3cr3t-userinfo@influx.example.internal:8086/db?token=s3cr3t-query"
token = ["s3cr3t-token"]
password = 5
[[alerts.receivers]]
name = "hook"
type = "webhook"
url = "ftp://hooks.example.com/s3cr3t-path?sig=s3cr3t-query"
secret = {value = "s3cr3t-hmac"}
[[alerts.receivers]]
name = "chat"
type = "slack"
url = "hooks.slack.com/services/s3cr3t-slack"
[[alerts.receivers]]
name = "pd"
type = "pagerduty"
routing_key = 12
[[alerts.receivers]]
name = "typo"
type = "slak"
url = "nope://hooks.slack.com/services/s3cr3t-slack"
[alerts]
receivers_extra = "x"
[dashboard]
basic_auth_password = ""
''', {"VIRTWATCH_RECEIVER_CHAT_URL": "not-a-url/s3cr3t-slack"})
    text = "\n".join(problems)
    assert_no_secret_in(text)
    assert "store.url = \"http://admin:<redacted>@influx.example.internal:8086/db?token=<redacted>\"" in text
    assert "store.token = <redacted>: expected a string, got an array" in text
    assert "store.password = <redacted>: expected a string, got an integer" in text
    assert 'alerts.receivers[0].url = "ftp://hooks.example.com/<redacted>?<redacted>"' in text
    assert "alerts.receivers[0].secret = <redacted>: expected a string, got a table" in text
    assert "alerts.receivers[1].url (from VIRTWATCH_RECEIVER_CHAT_URL) = <redacted>" in text
    assert "alerts.receivers[2].routing_key = <redacted>" in text
    assert "alerts.receivers[3].url = <redacted>" in text
    assert "dashboard.basic_auth_password = <redacted>: must not be empty" in text


def test_secrets_never_appear_in_reprs(tmp_path):
    path = write(tmp_path, '''
[store]
url = "influxdb://virtwatch@influx.example.internal:8086/virtwatch?rp=month"
token = "s3cr3t-token"
password = "s3cr3t-pw"
[[alerts.receivers]]
name = "hook"
type = "webhook"
url = "https://hooks.example.com/s3cr3t-path?sig=s3cr3t-query"
secret = "s3cr3t-hmac"
[[alerts.receivers]]
name = "chat"
type = "slack"
url = "https://hooks.slack.com/services/s3cr3t-slack"
[[alerts.receivers]]
name = "pd"
type = "pagerduty"
routing_key = "s3cr3t-rk"
[dashboard]
basic_auth_username = "operator"
basic_auth_password = "s3cr3t-dash"
''')
    config = load_config(path, {})
    text = repr(config)
    assert_no_secret_in(text)
    assert_no_secret_in(str(config))
    assert "token=<redacted>" in text and "basic_auth_username='operator'" in text
    assert "url='influxdb://virtwatch@influx.example.internal:8086/virtwatch?rp=month'" in text
    with_password = StoreConfig(url="influxdb://virtwatch:s3cr3t-userinfo@influx.example.internal:8086/virtwatch")
    assert "url='influxdb://virtwatch:<redacted>@influx.example.internal:8086/virtwatch'" in repr(with_password)
    assert "url='https://hooks.example.com/<redacted>?<redacted>'" in text
    assert config.alerts.receivers[2].url in text  # the public PagerDuty endpoint stays readable
    assert config.store.token == "s3cr3t-token"  # redaction is only in the repr


def test_the_agent_example_file_validates():
    config = load_config(EXAMPLE.parent / "agent.example.toml", {})
    assert config.agent.libvirt_read_only and config.agent.libvirt_uri.endswith("libvirt-sock-ro")
