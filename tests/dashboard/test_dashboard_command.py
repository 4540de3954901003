"""`virtwatch dashboard`: a bad config, SLO file or address is reported with its key and reason, no traceback."""

from __future__ import annotations

import pytest

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


# ---- a non-loopback address needs basic auth, or the operator saying so in the config ----

def run_dashboard(config, *args, timeout=60):
    """Run the real `virtwatch dashboard` until it exits; return the finished process."""
    import subprocess

    from dashboard_servers import VIRTWATCH

    return subprocess.run([str(VIRTWATCH), "dashboard", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_a_public_address_without_basic_auth_is_refused_with_one_line(tmp_path):
    from servers import free_port

    config = tmp_path / "virtwatch.toml"
    config.write_text(f'[store]\nurl = "duckdb://{tmp_path}/s.duckdb"\n')
    listen = f"0.0.0.0:{free_port()}"
    result = run_dashboard(config, "--listen", listen)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"--listen '{listen}': not a loopback address, and [dashboard] sets no basic auth")
    assert "allow_unauthenticated_public = true" in line


def test_a_public_listen_key_without_basic_auth_is_a_config_problem(tmp_path, capsys):
    config = tmp_path / "virtwatch.toml"
    config.write_text('[dashboard]\nlisten = "0.0.0.0:8050"\n')
    assert main(["check-config", str(config)]) == 1
    assert 'dashboard.listen = "0.0.0.0:8050": not a loopback address' in capsys.readouterr().err
    config.write_text('[dashboard]\nlisten = "0.0.0.0:8050"\nbasic_auth_username = "operator"\n'
                      'basic_auth_password = "pw"\n')
    assert main(["check-config", str(config)]) == 0


@pytest.mark.slow
def test_allow_unauthenticated_public_serves_with_a_warning_at_every_start(tmp_path):
    import subprocess
    import time

    from dashboard_servers import VIRTWATCH
    from servers import free_port, http

    config = tmp_path / "virtwatch.toml"
    config.write_text(f'[store]\nurl = "duckdb://{tmp_path}/s.duckdb"\n'
                      '[dashboard]\nallow_unauthenticated_public = true\n')
    for _start in range(2):
        port = free_port()
        log = tmp_path / "dashboard.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([str(VIRTWATCH), "dashboard", "--config", str(config), "--listen",
                                        f"0.0.0.0:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        try:
            deadline, status = time.monotonic() + 60, None
            while time.monotonic() < deadline and process.poll() is None and status != 200:
                try:
                    status, _ = http("GET", f"http://127.0.0.1:{port}/", timeout=2.0)
                except OSError:
                    time.sleep(0.1)
            assert status == 200, log.read_text()
        finally:
            process.terminate()
            process.wait(timeout=15)
        text = log.read_text()
        assert f"warning: dashboard.listen '0.0.0.0:{port}': serving WITHOUT authentication" in text
        assert "Traceback" not in text
