"""The admin API gives libvirtd's worker pool and clients, and never holds the caller past its deadline."""

import io
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import libvirt
import pytest

from collector import admin_api
from collector.admin_api import (AdminClient, AdminTimeout, AdminUnavailable, ClientGroup, describe_clients,
                                 group_clients)
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


def polls_until(condition, polls: int = 100, pause_seconds: float = 0.05) -> int:
    """Ask `condition` up to `polls` times, `pause_seconds` apart; return how many asks it took (polls + 1 when it
    never held): a count, so a slow machine waits longer instead of failing."""
    for asked in range(1, polls + 1):
        if condition():
            return asked
        time.sleep(pause_seconds)
    return polls + 1


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
        input="read\nclients\nsing\n", capture_output=True, text=True, timeout=30)
    first, second, third = [json.loads(line) for line in helper.stdout.splitlines()]
    assert "No such file or directory" in first["unavailable"]
    assert "No such file or directory" in second["unavailable"]
    assert third == {"unavailable": "admin helper: unknown request 'sing'"}
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
    assert polls_until(lambda: not helper_pids(uri)) <= 100
    assert helper_pids(uri) == []


def test_a_read_left_waiting_makes_read_clients_time_out_without_sending_a_second_request(silent_socket):
    uri = f"libvirtd+unix:///system?socket={silent_socket}"
    client = AdminClient(uri, timeout_seconds=0.5)
    with pytest.raises(AdminTimeout, match="its one request has waited"):
        client.read()
    with pytest.raises(AdminTimeout, match="the earlier 'read' request still waits, for [0-9]+ s, so 'clients' "
                                           "was not sent"):
        client.read_clients()
    with pytest.raises(AdminTimeout, match="its one request has waited"):  # the read still waits, still alone
        client.read()
    assert client.requests_sent == 1
    client.close()


def test_the_helper_pid_is_the_running_helpers_and_none_before_the_first_request_and_after_close(silent_socket):
    uri = f"libvirtd+unix:///system?socket={silent_socket}"
    client = AdminClient(uri, timeout_seconds=0.2)
    assert client.helper_pid is None
    with pytest.raises(AdminTimeout):
        client.read_clients()
    assert [client.helper_pid] == helper_pids(uri)
    client.close()
    assert client.helper_pid is None


# --- who holds the connections: group_clients and describe_clients on a fixture /proc -------------------------

COMMS = {4242: b"python3\n", 77: b"python3\n", 78: b"python3\n", 10: 'mem "poller", 1\n'.encode(),
         11: "ünï cödé\n".encode(), 12: "nova-compute-ü".encode()[:14] + b"\n"}  # 12: cut inside the ü


@pytest.fixture
def proc_root(tmp_path):
    """A /proc with only `<pid>/comm` files (COMMS); any other pid is gone."""
    for pid, comm in COMMS.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_bytes(comm)
    return tmp_path


def unix(pid, readonly=False, uid=0, user="root"):
    """A unix-socket client as read_clients gives it."""
    return {"id": 1, "transport": "unix", "connected_at": 1.0e9, "pid": pid, "uid": uid, "user": user,
            "readonly": readonly}


def remote(transport, address):
    """A tcp or tls client as read_clients gives it."""
    return {"id": 1, "transport": transport, "connected_at": 1.0e9, "pid": None, "uid": None, "user": None,
            "readonly": False, "address": address}


@pytest.mark.parametrize("clients, own_pids, expected", [
    pytest.param([unix(4242), unix(4242, readonly=True), unix(4242)], frozenset(),
                 [ClientGroup("python3", 4242, 0, 3, 1, False)],
                 id="the connections of one process are one group named by its comm, read-only ones counted"),
    pytest.param([unix(10), unix(11), unix(11), unix(12, uid=64055, user="nova")], frozenset(),
                 [ClientGroup("ünï cödé", 11, 0, 2, 0, False), ClientGroup('mem "poller", 1', 10, 0, 1, 0, False),
                  ClientGroup("nova-compute-\ufffd", 12, 64055, 1, 0, False)],
                 id="a comm is data: quotes, commas, spaces and unicode stay as they are, a cut character is replaced"),
    pytest.param([unix(999, uid=64055, user="nova"), unix(998, user=None)], frozenset(),
                 [ClientGroup("a process of nova", 999, 64055, 1, 0, False),
                  ClientGroup("unknown process", 998, 0, 1, 0, False)],
                 id="a process that is gone is named by its user, or unknown without one"),
    pytest.param([remote("tcp", "10.0.0.5:40001"), remote("tcp", "10.0.0.5:40002"), remote("tls", "[::1]:16514")],
                 frozenset(),
                 [ClientGroup("tcp 10.0.0.5", None, None, 2, 0, False),
                  ClientGroup("tls [::1]", None, None, 1, 0, False)],
                 id="remote clients are grouped by host, not by port, and have no pid or uid"),
    pytest.param([unix(78), unix(4242), unix(4242), unix(77), unix(10)], frozenset(),
                 [ClientGroup("python3", 4242, 0, 2, 0, False), ClientGroup('mem "poller", 1', 10, 0, 1, 0, False),
                  ClientGroup("python3", 77, 0, 1, 0, False), ClientGroup("python3", 78, 0, 1, 0, False)],
                 id="groups come by connections, then by name, then by pid"),
    pytest.param([unix(77), unix(78), unix(4242)], frozenset({77, 78}),
                 [ClientGroup("python3", 77, 0, 1, 0, True), ClientGroup("python3", 78, 0, 1, 0, True),
                  ClientGroup("python3", 4242, 0, 1, 0, False)],
                 id="the agent's own pid and its helper's are marked own"),
    pytest.param([], frozenset(), [], id="no clients are no groups"),
])
def test_grouping_clients(proc_root, clients, own_pids, expected):
    assert group_clients(clients, proc_root=proc_root, own_pids=own_pids) == expected


def group(process, connections, pid=None, own=False):
    """A ClientGroup of uid 0 with no read-only connections."""
    return ClientGroup(process, pid, 0, connections, 0, own)


@pytest.mark.parametrize("groups, limit, expected", [
    pytest.param([], 3, "no connections", id="no groups are no connections"),
    pytest.param([group("python3", 1, 4242)], 3, "1 connection from python3 (pid 4242)",
                 id="one connection is singular"),
    pytest.param([group("python3", 14, 4242), group("python3", 2, 77, own=True)], 3,
                 "14 connections from python3 (pid 4242), 2 from the virtwatch agent itself (pid 77)",
                 id="the agent's own group is named the agent itself whatever its comm"),
    pytest.param([group('mem "poller", 1', 3, 10), group("ünï cödé", 1, 11), group("tcp 10.0.0.5", 1)], 3,
                 '3 connections from mem "poller", 1 (pid 10), 1 from ünï cödé (pid 11), 1 from tcp 10.0.0.5',
                 id="names are used as text, never quoted, and a remote host has no pid"),
    pytest.param([group("a", 9, 1), group("b", 4, 2), group("c", 3, 3), group("d", 2, 4), group("e", 2, 5),
                  group("f", 1, 6)], 3,
                 "9 connections from a (pid 1), 4 from b (pid 2), 3 from c (pid 3), and 5 more from 3 other processes",
                 id="groups beyond the limit are counted, not named"),
    pytest.param([group("a", 9, 1), group("b", 1, 2)], 1,
                 "9 connections from a (pid 1), and 1 more from 1 other process",
                 id="one group beyond the limit is one other process"),
])
def test_describing_clients(groups, limit, expected):
    assert describe_clients(groups, limit=limit) == expected


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
    assert polls_until(lambda: client.read()["clients"] <= before) <= 100  # the daemon drops it asynchronously
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


def own_comm():
    """This process's name as /proc gives it."""
    return Path(f"/proc/{os.getpid()}/comm").read_text().removesuffix("\n")


@pytest.mark.slow
def test_the_clients_are_this_processs_connections_with_its_pid_and_uid_and_readonly_ones_counted(libvirtd):
    client = AdminClient(libvirtd.admin_uri)
    before = {c["id"] for c in client.read_clients()}
    opened_at = time.time()
    conns = [libvirt.open(libvirtd.uri_test) for _ in range(3)] + [libvirt.openReadOnly(libvirtd.uri_test)
                                                                   for _ in range(2)]
    try:
        clients = client.read_clients()
    finally:
        for conn in conns:
            conn.close()
        client.close()
    new = [c for c in clients if c["id"] not in before]
    assert len(new) == 5 and clients.left_out == 0
    assert {(c["pid"], c["uid"], c["user"], c["transport"]) for c in new} == {
        (os.getpid(), os.getuid(), pwd.getpwuid(os.getuid()).pw_name, "unix")}
    assert sorted(c["readonly"] for c in new) == [False, False, False, True, True]
    assert all(int(opened_at) <= c["connected_at"] <= time.time() for c in new)  # whole seconds since the epoch
    ours = [g for g in group_clients(clients) if g.pid == os.getpid()]
    mine = sum(1 for c in clients if c["pid"] == os.getpid())  # 5, and any the fixture's startup check left
    assert ours == [ClientGroup(own_comm(), os.getpid(), os.getuid(), mine, 2, False)] and mine >= 5
    groups = group_clients(clients, own_pids=frozenset({os.getpid()}))
    assert describe_clients(groups).startswith(f"{mine} connections from the virtwatch agent itself "
                                               f"(pid {os.getpid()})")


@pytest.mark.slow
def test_a_client_that_closes_is_gone_from_the_next_list(libvirtd):
    client = AdminClient(libvirtd.admin_uri)
    before = {c["id"] for c in client.read_clients()}
    staying = libvirt.open(libvirtd.uri_test)
    leaving = libvirt.open(libvirtd.uri_test)
    try:
        staying_id, leaving_id = sorted(c["id"] for c in client.read_clients() if c["id"] not in before)
        leaving.close()
        # the daemon drops a closed client asynchronously
        assert polls_until(lambda: leaving_id not in {c["id"] for c in client.read_clients()}) <= 100
        ids = {c["id"] for c in client.read_clients()}
    finally:
        staying.close()
        client.close()
    assert leaving_id not in ids and staying_id in ids


@pytest.mark.slow
def test_the_helper_describes_at_most_max_clients_listed_and_counts_the_rest(libvirtd):
    # The bound lowered to 2 in a helper of its own (the helper reads MAX_CLIENTS_LISTED at each request).
    helper_code = ("import sys; sys.path.insert(0, sys.argv[1]); from collector import admin_api; "
                   "admin_api.MAX_CLIENTS_LISTED = 2; admin_api.serve(sys.argv[2], 'libvirtd')")
    root = str(Path(admin_api.__file__).resolve().parents[1])
    conns = [libvirt.open(libvirtd.uri_test) for _ in range(4)]
    try:
        helper = subprocess.run([sys.executable, "-I", "-c", helper_code, root, libvirtd.admin_uri],
                                input="clients\nread\n", capture_output=True, text=True, timeout=30)
    finally:
        for conn in conns:
            conn.close()
    listed, fields = [json.loads(line) for line in helper.stdout.splitlines()]
    assert len(listed["clients"]) == 2
    assert listed["clients_left_out"] == fields["fields"]["clients"] - 2 >= 2


@pytest.mark.slow
def test_a_stopped_daemon_times_out_read_clients_and_the_following_read_sends_no_second_request(libvirtd):
    client = AdminClient(libvirtd.admin_uri, timeout_seconds=1.0)
    client.read_clients()
    helper, sent = client.helper_pid, client.requests_sent
    libvirtd.kill(signal.SIGSTOP)
    try:
        with pytest.raises(AdminTimeout, match="no answer within 1 s"):
            client.read_clients()
        with pytest.raises(AdminTimeout, match="the earlier 'clients' request still waits"):
            client.read()
        assert (client.helper_pid, client.requests_sent) == (helper, sent + 1)
    finally:
        libvirtd.kill(signal.SIGCONT)
    assert client.read()["workers_max"] == 10  # the late list is dropped, not taken for the read's answer
    assert client.requests_sent == sent + 2
    assert isinstance(client.read_clients(), list)
    client.close()
