"""The admin API gives libvirtd's worker pool and clients, and never holds the caller past its deadline."""

import io
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import libvirt
import pytest

from collector import admin_api
from collector.admin_api import AdminClient, AdminTimeout, AdminUnavailable
from tsdb.schema import MEASUREMENTS

ADMIN_FIELDS = {"workers_min", "workers_max", "workers_current", "workers_free", "workers_priority",
                "job_queue_depth", "clients", "clients_max"}


@pytest.fixture
def silent_socket(tmp_path):
    """A unix socket that accepts connections and never answers, like a daemon stopped with SIGSTOP."""
    path = tmp_path / "admin-sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    yield path
    listener.close()


def helper_pids(uri):
    """Pids of running admin helpers started for `uri` (their argv ends with `--uri URI`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if argv[-2:] == [b"--uri", uri.encode()] and any(a.endswith(b"admin_api.py") for a in argv) and state != "Z":
            pids.append(int(entry.name))
    return pids


def test_every_field_read_is_a_field_of_the_libvirtd_measurement():
    assert all(MEASUREMENTS["libvirtd"].field(name) for name in ADMIN_FIELDS)


def test_an_admin_uri_whose_socket_does_not_exist_is_unavailable_naming_the_socket(tmp_path):
    client = AdminClient(f"libvirtd+unix:///system?socket={tmp_path}/no-such-sock", timeout_seconds=5)
    with pytest.raises(AdminUnavailable, match=f"'{tmp_path}/no-such-sock': No such file or directory"):
        client.read()
    client.close()


def test_the_helper_answers_each_request_with_one_json_line(tmp_path):
    # Always in its own process: libvirt-admin.so.0 in this one would crash the libvirt-python connections
    # of later tests.
    helper = subprocess.run(
        [sys.executable, "-I", admin_api.__file__, "--uri", f"libvirtd+unix:///system?socket={tmp_path}/no-sock"],
        input="read\nsing\n", capture_output=True, text=True, timeout=30)
    first, second = [json.loads(line) for line in helper.stdout.splitlines()]
    assert "No such file or directory" in first["unavailable"]
    assert second == {"unavailable": "admin helper: unknown request 'sing'"}
    assert (helper.returncode, helper.stderr) == (0, "")  # libvirt's own error printing is silenced


def test_the_admin_library_refuses_to_load_beside_libvirt_python():
    with pytest.raises(RuntimeError, match="libvirt-python"):
        admin_api.serve(None, "libvirtd", requests=io.StringIO("read\n"), replies=io.StringIO())


def test_a_daemon_that_never_answers_times_out_keeps_one_request_outstanding_and_close_leaves_no_helper(
        silent_socket):
    uri = f"libvirtd+unix:///system?socket={silent_socket}"
    client = AdminClient(uri, timeout_seconds=0.5)
    helpers = []
    for _ in range(3):  # later reads wait on the same request: no new helper, no new connection
        with pytest.raises(AdminTimeout, match="no answer within 0.5 s"):
            client.read()
        helpers.append(helper_pids(uri))
    assert len(helpers[0]) == 1 and helpers[1] == helpers[0] == helpers[2]
    client.close()
    deadline = time.monotonic() + 5
    while helper_pids(uri) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helper_pids(uri) == []


# --- against a real private libvirtd (tests/libvirtd.py) ----------------------------------------------

@pytest.mark.slow
def test_the_worker_pool_is_the_daemons_configuration(libvirtd):
    client = AdminClient(libvirtd.admin_uri)
    fields = client.read()
    client.close()
    assert set(fields) == ADMIN_FIELDS
    assert all(isinstance(value, int) for value in fields.values())
    assert (fields["workers_min"], fields["workers_max"], fields["workers_priority"]) == (2, 10, 2)
    assert fields["workers_min"] <= fields["workers_current"] <= fields["workers_max"]
    assert 0 <= fields["workers_free"] <= fields["workers_current"]
    assert fields["job_queue_depth"] == 0
    assert fields["clients_max"] == 5000  # libvirtd.conf's max_clients default


@pytest.mark.slow
def test_an_open_libvirt_connection_is_a_client_and_lives_with_the_admin_api_in_one_process(libvirtd):
    client = AdminClient(libvirtd.admin_uri)
    before = client.read()["clients"]
    conn = libvirt.open(libvirtd.uri_test)  # libvirt.so and libvirt-admin.so in one process would crash
    try:
        assert client.read()["clients"] >= max(1, before + 1)
    finally:
        conn.close()
    deadline = time.monotonic() + 5
    while client.read()["clients"] > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.read()["clients"] == before
    client.close()


@pytest.mark.slow
def test_a_stopped_daemon_times_out_within_the_deadline_and_answers_again_after_sigcont(libvirtd):
    client = AdminClient(libvirtd.admin_uri, timeout_seconds=1.0)
    client.read()
    libvirtd.kill(signal.SIGSTOP)
    try:
        with pytest.raises(AdminTimeout):
            client.read()
    finally:
        libvirtd.kill(signal.SIGCONT)
    assert client.read()["workers_max"] == 10
    client.close()


@pytest.mark.slow
def test_the_kept_connection_is_replaced_when_the_daemon_restarts(libvirtd):
    client = AdminClient(libvirtd.admin_uri)
    client.read()
    libvirtd.restart()
    assert client.read()["workers_min"] == 2
    client.close()


@pytest.mark.slow
def test_a_killed_daemon_is_unavailable_and_readable_again_once_restarted(libvirtd):
    client = AdminClient(libvirtd.admin_uri)
    client.read()
    libvirtd.kill(signal.SIGKILL)
    with pytest.raises(AdminUnavailable, match="libvirt-admin-sock"):
        client.read()
    libvirtd.restart()
    assert client.read()["workers_max"] == 10
    client.close()
