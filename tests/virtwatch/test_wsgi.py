"""virtwatch.wsgi, gunicorn's entry point (`gunicorn virtwatch.wsgi:server`): the app of the file
$VIRTWATCH_CONFIG names, or a message naming the variable, the file or the key."""

import pytest

from virtwatch import wsgi
from virtwatch.wsgi import CONFIG_ENV, DashboardConfigError, server_from_environment


def test_without_the_variable_the_error_names_it(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(DashboardConfigError, match=f"{CONFIG_ENV} is not set"):
        server_from_environment()


def test_a_bad_config_names_the_file_and_the_key(monkeypatch, tmp_path):
    path = tmp_path / "virtwatch.toml"
    path.write_text('[store]\nurl = "http://influx.example.internal:8086/db"\n', encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    with pytest.raises(DashboardConfigError) as caught:
        server_from_environment()
    assert str(caught.value).startswith(f"{path}: store.url = ")


def test_a_good_config_serves_the_fleet_page_to_a_loopback_host(monkeypatch, tmp_path):
    path = tmp_path / "virtwatch.toml"
    path.write_text(f'[store]\nurl = "duckdb://{tmp_path}/store.duckdb"\n[alerts]\nstate_dir = "state"\n',
                    encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    server = server_from_environment()
    assert server.test_client().get("/", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    assert server.test_client().get("/", headers={"Host": "evil.example.com"}).status_code == 403


def test_only_server_is_built_on_access():
    with pytest.raises(AttributeError, match="has no attribute 'app'"):
        wsgi.app  # noqa: B018
