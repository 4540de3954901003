"""A libvirt call under a deadline and what its failure means (collector.libvirt_source), as the agent's
LibvirtSource and the soak's Connection both use them: a call past its deadline is reported as timed out and
holds no caller; errors are classified as before. Real connections to libvirt's in-process test driver; only a
keepalive timeout, which needs a peer that stopped answering, is a libvirt error built by hand."""

from __future__ import annotations

import threading

import libvirt
import pytest

from collector.libvirt_source import (Call, CallFailed, ConnectionLost, LibvirtSource, NobodyListening, call_problem,
                                      connect_problem)
from collector.soak.driver import CANNOT_CONNECT, LOST, TIMEOUT, CallError, Connection

TEST_URI = "test:///default"
NOBODY_URI = "qemu+unix:///system?socket=/nonexistent/virtwatch-test-sock"
#: how long a test waits for something that happens at once (a generous bound, never asserted on)
SETTLE_SECONDS = 30.0


def blocked_until(released: threading.Event, entered: threading.Event):
    """Return a call that says it has started, then waits until released."""
    def call(_conn=None):
        entered.set()
        assert released.wait(SETTLE_SECONDS)
        return "late answer"
    return call


def lost_connection():
    """Return a connection to the test driver that is closed: every call on it fails as lost."""
    conn = libvirt.open(TEST_URI)
    conn.close()
    return conn


def keepalive_error() -> libvirt.libvirtError:
    """Return the error libvirt raises when the peer stopped answering keepalives (built on a fresh thread, whose
    last libvirt error is empty, so the message is the one given)."""
    made = []
    thread = threading.Thread(target=lambda: made.append(libvirt.libvirtError(
        "internal error: connection closed due to keepalive timeout")))
    thread.start()
    thread.join()
    return made[0]


def test_an_agent_call_past_its_deadline_is_still_waiting_and_holds_no_caller():
    source = LibvirtSource(TEST_URI)
    assert source.connect().wait(SETTLE_SECONDS)
    released, entered = threading.Event(), threading.Event()
    call = source.begin("stats", "bulk stats", blocked_until(released, entered))
    assert entered.wait(SETTLE_SECONDS)
    assert call.wait(0.01) is False and not call.done  # the caller went on while the call waits
    assert source.begin("stats", "bulk stats", lambda conn: "second") is call  # one outstanding call of a kind
    released.set()
    assert call.wait(SETTLE_SECONDS) and call.result() == "late answer"
    source.close()


def test_a_soak_call_past_its_deadline_raises_timeout_while_the_call_still_waits():
    connection = Connection(TEST_URI, timeout_seconds=SETTLE_SECONDS, name="test-deadline")
    connection.open()
    connection.timeout_seconds = 0.05
    released, entered = threading.Event(), threading.Event()
    with pytest.raises(CallError) as raised:
        connection.call(blocked_until(released, entered))
    assert raised.value.kind == TIMEOUT and "the call took longer than 0.05 s on test:///default" in str(raised.value)
    assert entered.is_set() and not released.is_set()  # the caller was given the timeout before the call returned
    assert not connection.is_open and connection.stuck_workers() == 1
    released.set()
    for _round in range(int(SETTLE_SECONDS / 0.01)):
        if connection.stuck_workers() == 0:
            break
        threading.Event().wait(0.01)
    assert connection.stuck_workers() == 0  # the abandoned connection was closed once its call returned
    connection.timeout_seconds = SETTLE_SECONDS
    assert connection.call(lambda conn: conn.getType()) == "TEST"  # the next call connects again
    connection.close()


def test_an_answer_within_the_deadline_is_returned():
    connection = Connection(TEST_URI, timeout_seconds=SETTLE_SECONDS)
    assert connection.call(lambda conn: len(conn.listAllDomains(0))) >= 1 and connection.is_open
    connection.close()


def test_an_error_from_a_live_daemon_is_a_failed_call_with_its_code():
    source = LibvirtSource(TEST_URI)
    assert source.connect().wait(SETTLE_SECONDS)
    call = source.begin("metadata", "lookup", lambda conn: conn.lookupByName("no-such-guest"))
    assert call.wait(SETTLE_SECONDS)
    with pytest.raises(CallFailed, match="^lookup on test:///default failed: ") as raised:
        call.result()
    assert raised.value.code == libvirt.VIR_ERR_NO_DOMAIN and source.connected  # the connection is kept
    source.close()
    connection = Connection(TEST_URI, timeout_seconds=SETTLE_SECONDS)
    with pytest.raises(CallError) as soaked:
        connection.call(lambda conn: conn.lookupByName("no-such-guest"))
    assert soaked.value.kind == "VIR_ERR_NO_DOMAIN" and connection.is_open
    connection.close()


def test_an_error_on_a_dead_connection_is_a_lost_connection():
    conn = lost_connection()
    with pytest.raises(libvirt.libvirtError) as raised:
        conn.numOfDomains()
    problem = call_problem("domain counts", TEST_URI, conn, raised.value)
    assert isinstance(problem, ConnectionLost) and problem.reason is None
    assert str(problem).startswith("domain counts on test:///default: ")


def test_a_soak_call_on_a_dead_connection_is_lost_and_connects_again():
    connection = Connection(TEST_URI, timeout_seconds=SETTLE_SECONDS)
    connection.open()
    connection.call(lambda conn: conn.close())  # closed under the connection, as a daemon that went away
    with pytest.raises(CallError) as raised:
        connection.call(lambda conn: conn.numOfDomains())
    assert raised.value.kind == LOST and not connection.is_open
    assert connection.call(lambda conn: conn.getType()) == "TEST"
    connection.close()


def test_a_keepalive_timeout_is_a_lost_connection_for_the_agent_and_a_timeout_for_the_soak():
    conn = libvirt.open(TEST_URI)
    problem = call_problem("stats probe", TEST_URI, conn, keepalive_error())
    assert isinstance(problem, ConnectionLost) and problem.reason == "keepalive"
    assert problem.detail == "internal error: connection closed due to keepalive timeout"
    conn.close()


def test_a_close_reason_libvirt_gave_makes_any_error_a_lost_connection():
    conn = libvirt.open(TEST_URI)
    with pytest.raises(libvirt.libvirtError) as raised:
        conn.lookupByName("no-such-guest")
    problem = call_problem("stats probe", TEST_URI, conn, raised.value, close_reason="eof")
    assert isinstance(problem, ConnectionLost) and problem.reason == "eof"
    conn.close()


def test_nobody_listening_is_told_from_another_connect_failure(tmp_path):
    with pytest.raises(libvirt.libvirtError) as absent:
        libvirt.open(NOBODY_URI)
    problem = connect_problem(NOBODY_URI, absent.value)
    assert isinstance(problem, NobodyListening) and str(problem).startswith(f"cannot connect to {NOBODY_URI}: ")
    garbled = tmp_path / "garbled.xml"
    garbled.write_text("<node>not a test driver's node")
    with pytest.raises(libvirt.libvirtError) as failed:
        libvirt.open(f"test://{garbled}")
    assert type(connect_problem(f"test://{garbled}", failed.value)) is CallFailed


def test_the_agent_and_the_soak_say_nobody_listens_their_own_way():
    source = LibvirtSource(NOBODY_URI)
    call = source.connect()
    assert call.wait(SETTLE_SECONDS)
    with pytest.raises(NobodyListening):
        call.result()
    connection = Connection(NOBODY_URI, timeout_seconds=SETTLE_SECONDS)
    with pytest.raises(CallError) as raised:
        connection.open()
    assert raised.value.kind == CANNOT_CONNECT and str(raised.value).startswith(f"cannot connect to {NOBODY_URI}: ")


def test_a_bug_in_an_agent_call_ends_it_as_failed_and_in_a_soak_call_is_raised_as_it_is():
    source = LibvirtSource(TEST_URI)
    assert source.connect().wait(SETTLE_SECONDS)
    call = source.begin("counts", "domain counts", lambda conn: 1 / 0)
    assert call.wait(SETTLE_SECONDS)
    with pytest.raises(CallFailed, match="domain counts on test:///default: ZeroDivisionError"):
        call.result()
    source.close()
    connection = Connection(TEST_URI, timeout_seconds=SETTLE_SECONDS)
    with pytest.raises(ZeroDivisionError):
        connection.call(lambda conn: 1 / 0)
    assert connection.is_open
    connection.close()


def test_a_call_runs_on_a_thread_of_its_own_and_ends_with_the_problem_it_maps_to():
    call = Call("probe", "stats probe")
    call.run_on_thread(lambda: (_ for _ in ()).throw(KeyError("x")), lambda error: CallFailed(repr(error)),
                       "test-call")
    assert call.wait(SETTLE_SECONDS) and call.done
    with pytest.raises(CallFailed, match="KeyError"):
        call.result()
