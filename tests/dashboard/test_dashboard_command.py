"""`virtwatch dashboard`: a bad config, SLO file or address is reported with its key and reason, no traceback."""

from __future__ import annotations

from virtwatch.cli import main


def test_a_bad_listen_address_is_named(tmp_path, capsys):
    config = tmp_path / "virtwatch.toml"
    config.write_text(f'[store]\nurl = "duckdb://{tmp_path}/s.duckdb"\n')
    assert main(["dashboard", "--config", str(config), "--listen", "localhost"]) == 2
    assert "--listen 'localhost': expected HOST:PORT" in capsys.readouterr().err


def test_several_workers_are_refused_on_the_embedded_store(tmp_path, capsys):
    config = tmp_path / "virtwatch.toml"
    config.write_text(f'[store]\nurl = "duckdb://{tmp_path}/s.duckdb"\n')
    assert main(["dashboard", "--config", str(config), "--workers", "3"]) == 2
    assert "--workers 3: the embedded DuckDB store serves one process only" in capsys.readouterr().err


def test_a_broken_slo_file_is_reported_with_its_key(tmp_path, capsys):
    slo_file = tmp_path / "slos.toml"
    slo_file.write_text('[[slo]]\nname = "x"\nobjective = 120\nsli = "libvirtd_availability"\n')
    config = tmp_path / "virtwatch.toml"
    config.write_text(f'[store]\nurl = "duckdb://{tmp_path}/s.duckdb"\n[alerts]\nslo_file = "{slo_file}"\n')
    assert main(["dashboard", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"alerts.slo_file = '{slo_file}'" in err and "objective" in err and "Traceback" not in err


def test_basic_auth_needs_both_keys(tmp_path, capsys):
    config = tmp_path / "virtwatch.toml"
    config.write_text('[dashboard]\nbasic_auth_username = "operator"\n')
    assert main(["dashboard", "--config", str(config)]) == 2
    assert "dashboard.basic_auth_password: missing required key" in capsys.readouterr().err
