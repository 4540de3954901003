"""`[store] url` in the config file is checked by the store's own parser: check-config accepts exactly the URLs
the store opens (tsdb.urls.SCHEMES is the one list of schemes) and refuses the rest naming the key."""

import pytest

from tsdb.urls import SCHEMES, StoreURLError, is_embedded_url, parse_store_url
from virtwatch.cli import main
from virtwatch.config import ConfigError, check_key, config_from_dict

REFUSED_SCHEMES = ["http", "https", "influxdb3", "influx", "postgres", "file", "sqlite", "duckdb2", "influxdb1"]


def example_url(scheme: str) -> str:
    """Return a URL of this scheme that its store opens."""
    return "duckdb:///var/lib/virtwatch/store.duckdb" if SCHEMES[scheme][0] == "duckdb" else \
        f"{scheme}://influx.example.internal:8086/virtwatch"


def store_accepts(url: str) -> bool:
    """Say whether the store's parser (what open_store uses) takes url."""
    try:
        parse_store_url(url)
    except StoreURLError:
        return False
    return True


def config_problems(url: str) -> list[str]:
    """Return the problems of a config whose [store] url is url (none when it is accepted)."""
    try:
        config_from_dict({"store": {"url": url}}, {})
    except ConfigError as error:
        return error.problems
    return []


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_scheme_the_store_knows_is_accepted_by_the_config(scheme):
    for url in (example_url(scheme), example_url(scheme).replace(scheme, scheme.upper(), 1)):
        assert store_accepts(url)
        assert config_problems(url) == []
        assert check_key("store", "url", url) is None


@pytest.mark.parametrize("scheme", REFUSED_SCHEMES)
def test_a_scheme_the_store_does_not_know_is_refused_naming_the_key_and_the_known_schemes(scheme):
    url = f"{scheme}://influx.example.internal:8086/virtwatch"
    assert not store_accepts(url)
    assert config_problems(url) == [f'store.url = "{url}": unknown scheme {scheme!r}; expected one of '
                                    f'{", ".join(SCHEMES)}']


@pytest.mark.parametrize("url", [
    "influxdb://h/db", "influxdb://h:8086/db?rp=month", "influxdb2s://h/bucket?org=acme", "duckdb:///x.duckdb",
    "duckdb://relative/path", "duckdb:///var/lib/", "influxdb://h/a/b", "influxdb://h:0/db", "influxdb://h/db#x",
    "influxdb://u:pw@h/db", "influxdb://[::1]:8086/db", "influxdb://[zz]/db", "influxdb2://h/b?rp=x",
    "influxdb:/h/db", "influxdb//h/db", "://h/db", "", " influxdb://h/db", "influxdb://h/db\n",
    "DuckDB:///var/lib/virtwatch/store.duckdb", "InfluxDB2://h/bucket",
])
def test_the_config_and_the_store_agree_on_every_url(url):
    assert (config_problems(url) == []) == store_accepts(url), url
    assert all(problem.startswith("store.url = ") for problem in config_problems(url))


def test_check_config_says_ok_to_every_scheme_and_names_the_key_for_another(tmp_path, capsys):
    for scheme in SCHEMES:
        path = tmp_path / f"{scheme}.toml"
        path.write_text(f'[store]\nurl = "{example_url(scheme)}"\n', encoding="utf-8")
        assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    path = tmp_path / "http.toml"
    path.write_text('[store]\nurl = "http://influx.example.internal:8086/virtwatch"\n', encoding="utf-8")
    assert main(["check-config", str(path)]) == 1
    assert "store.url = \"http://influx.example.internal:8086/virtwatch\": unknown scheme 'http'" in \
        capsys.readouterr().err


@pytest.mark.parametrize("url, embedded", [
    (None, True), ("duckdb:///var/lib/virtwatch/store.duckdb", True), ("DUCKDB:///x.duckdb", True),
    ("influxdb://h/db", False), ("influxdb2s://h/bucket", False), ("duckdb://relative", False),
])
def test_whether_a_url_is_the_embedded_store_is_the_parsers_answer_too(url, embedded):
    assert is_embedded_url(url) is embedded
