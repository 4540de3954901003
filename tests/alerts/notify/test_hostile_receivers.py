"""Receivers that drip, hang or flood, on real loopback peers: each costs its deadline and a capped read, and
delays no other receiver's page, no drain and no engine round past its deadline; its notification stays pending.

Nothing here asserts a duration: the outcomes say it (a page arrived while the dripping peer was still connected,
a notification is still in the outbox, a second delivery was not started, bytes read stayed under the cap).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from alerts.engine import Engine
from alerts.notify import Backoff, NotifyError, Outbox, drain, notifier_for
from alerts.notify.config import ReceiverConfig
from alerts.notify.transport import ANSWER_MAX_BYTES, Transport
from alerts.paths import outbox_path
from notify_conformance import sample_notification
from servers import BlackholeServer, DripServer, FloodServer

DEADLINE_SECONDS = 1.0  # twice the drip interval: a per-read timeout of this would never fire
FLOOD_BYTES = 400 * 10**6
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
GUARD_SECONDS = 60.0  # only stops a broken test from hanging; never an assertion

RECEIVER_TYPES = {
    "webhook": lambda url: ReceiverConfig(name="hook", type="webhook", url=url + "/hook", secret="s3cret",
                                          timeout_seconds=DEADLINE_SECONDS),
    "alertmanager": lambda url: ReceiverConfig(name="am", type="alertmanager", url=url,
                                               timeout_seconds=DEADLINE_SECONDS),
    "pagerduty": lambda url: ReceiverConfig(name="pd", type="pagerduty", url=url + "/v2/enqueue",
                                            routing_key=ROUTING_KEY, timeout_seconds=DEADLINE_SECONDS),
    "slack": lambda url: ReceiverConfig(name="slack", type="slack", url=url + "/services/T0/B0/XX",
                                        timeout_seconds=DEADLINE_SECONDS),
}
DRIPS = {
    "from its first byte": b"",
    "the body of a 500 after prompt headers": b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000\r\n\r\n",
}


def wait_for(what: str, condition) -> None:
    """Poll until condition() holds; fail naming `what` if it never does (a guard, not a measurement)."""
    ends = time.monotonic() + GUARD_SECONDS
    while not condition():
        if time.monotonic() > ends:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


def hook(name: str, url: str) -> ReceiverConfig:
    return ReceiverConfig(name=name, type="webhook", url=url + "/hook", timeout_seconds=DEADLINE_SECONDS)


def pair(drip: DripServer, good) -> dict:
    """Return notifiers for a dripping receiver and a good one, named so."""
    return {"drip": notifier_for(hook("drip", drip.url)), "good": notifier_for(hook("good", good.url))}


def gated_backoff(gate: threading.Event, max_attempts: int = 2) -> Backoff:
    """A backoff whose wait between attempts lasts until the test opens the gate."""
    return Backoff(base_seconds=0.01, max_seconds=0.01, max_attempts=max_attempts, sleep=lambda _: gate.wait())


@pytest.fixture
def gate():
    opened = threading.Event()
    yield opened
    opened.set()  # never leave a delivery thread waiting


# --- one request -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("drip", DRIPS.values(), ids=DRIPS.keys())
@pytest.mark.parametrize("kind", RECEIVER_TYPES)
def test_a_receiver_dripping_a_byte_every_half_second_is_cut_at_its_deadline_naming_it(kind, drip):
    with DripServer(head=drip, interval_seconds=0.5) as peer:
        notifier = notifier_for(RECEIVER_TYPES[kind](peer.url))
        with pytest.raises(NotifyError) as caught:
            notifier.send(sample_notification())
        assert caught.value.retryable and caught.value.status_code is None
        assert f"within the {DEADLINE_SECONDS:g} s timeout (a deadline for the whole request)" in caught.value.message
        assert peer.bytes_sent >= 1  # it did drip: each read returned in time, the request as a whole did not
        wait_for("the dripping peer sees the connection closed", lambda: peer.open_connections == 0)
        assert peer.connections_total == 1


def test_a_receiver_that_says_200_at_once_and_drips_its_body_has_the_page_delivered_once():
    with DripServer(head=b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n") as peer:
        notifier_for(hook("drip", peer.url)).send(sample_notification())  # the status says it all, as in Alertmanager
        wait_for("the connection closed without waiting for the body", lambda: peer.open_connections == 0)
        assert peer.connections_total == 1


@pytest.mark.parametrize("kind", RECEIVER_TYPES)
def test_a_receiver_that_accepts_and_never_answers_is_cut_at_its_deadline(kind):
    with BlackholeServer() as peer:
        notifier = notifier_for(RECEIVER_TYPES[kind](f"http://127.0.0.1:{peer.port}"))
        with pytest.raises(NotifyError, match="deadline for the whole request") as caught:
            notifier.send(sample_notification())
        assert caught.value.retryable and peer.connections_total == 1


def test_a_receiver_that_never_reads_a_large_request_is_cut_while_it_is_sent():
    with BlackholeServer() as peer:  # the kernel buffers fill and sending blocks: the deadline covers that too
        transport = Transport("webhook receiver 'hook'", DEADLINE_SECONDS)
        with pytest.raises(NotifyError, match="deadline for the whole request"):
            transport.post_json(f"http://127.0.0.1:{peer.port}/hook", b"[" + b" " * 64 * 1024 * 1024 + b"]")


def test_a_500_with_a_400_mb_body_reads_at_most_the_cap_and_reports_the_status():
    with FloodServer(status=500, body_bytes=FLOOD_BYTES) as peer:
        transport = Transport("pagerduty receiver 'pd'", DEADLINE_SECONDS)
        with pytest.raises(NotifyError) as caught:
            transport.post_json(peer.url + "/v2/enqueue", b"{}")
        assert caught.value.status_code == 500 and caught.value.retryable
        assert "answered 500: xxxx" in caught.value.message and len(caught.value.message) < 300
        assert transport.answer_bytes_read <= ANSWER_MAX_BYTES
        wait_for("the flooding peer sees the connection closed", lambda: peer.open_connections == 0)
        assert peer.bytes_sent < FLOOD_BYTES  # the rest of the flood was refused, not read and thrown away


@pytest.mark.parametrize("kind", RECEIVER_TYPES)
def test_the_memory_a_400_mb_flood_costs_every_receiver_stays_within_a_few_times_the_cap(kind):
    with FloodServer(status=500, body_bytes=FLOOD_BYTES) as peer:
        notifier = notifier_for(RECEIVER_TYPES[kind](peer.url))
        notification = sample_notification()
        tracemalloc.start()
        try:
            with pytest.raises(NotifyError, match="answered 500"):
                notifier.send(notification)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 * ANSWER_MAX_BYTES  # 1 MiB, all allocations included; the flood was 400 MB


# --- fan-out: drain ---------------------------------------------------------------------------------------------

def test_the_good_receivers_page_arrives_while_the_dripping_receiver_is_still_connected(tmp_path, http_receiver):
    with DripServer(interval_seconds=0.5) as peer:
        notifiers = pair(peer, http_receiver)
        outbox = Outbox(tmp_path)
        dripped = outbox.put(sample_notification(receiver="drip"))  # older: a one-after-another drain tries it first
        outbox.put(sample_notification(receiver="good"))
        failures = []
        draining = threading.Thread(target=lambda: failures.extend(
            drain(outbox, notifiers, Backoff(max_attempts=1))), daemon=True)
        draining.start()
        wait_for("the good receiver's page", lambda: http_receiver.delivered)
        assert peer.open_connections == 1  # still dripping
        draining.join(GUARD_SECONDS)
        assert not draining.is_alive()
    assert len(http_receiver.delivered) == 1 and http_receiver.delivered[0].json()["receiver"] == "good"
    [failure] = failures
    assert (failure.outbox_id, failure.receiver, failure.kept) == (dripped, "drip", True)
    assert f"{DEADLINE_SECONDS:g} s" in failure.error.message and "deadline" in failure.error.message
    assert [i for i, _ in outbox.pending()] == [dripped]


def test_drain_returns_at_the_deadline_keeps_the_notification_and_never_sends_it_twice_at_once(tmp_path, gate):
    with DripServer(interval_seconds=0.5) as peer:
        notifiers = {"drip": notifier_for(hook("drip", peer.url))}
        outbox = Outbox(tmp_path)
        dripped = outbox.put(sample_notification(receiver="drip"))
        backoff = gated_backoff(gate)  # the first attempt is cut; the second waits for the gate

        [first] = drain(outbox, notifiers, backoff)
        assert first.kept and first.outbox_id == dripped and "deadline" in first.error.message
        assert [i for i, _ in outbox.pending()] == [dripped]

        [second] = drain(outbox, notifiers, backoff)  # the first delivery is still under way
        assert second.kept and "still under way" in second.error.message
        assert peer.connections_total == 1  # no second delivery to the same receiver meanwhile

        gate.set()  # its second attempt: cut at the deadline too; then the delivery ends and frees the receiver
        wait_for("the first delivery ends", lambda: outbox.claim("drip"))
        outbox.release("drip")
        assert peer.connections_total == 2 and [i for i, _ in outbox.pending()] == [dripped]

        [third] = drain(outbox, notifiers, Backoff(max_attempts=1))  # the next round tries it again
        assert third.kept and "deadline" in third.error.message and peer.connections_total == 3
    assert [i for i, _ in outbox.pending()] == [dripped]


def test_later_notifications_of_a_receiver_wait_behind_one_still_being_delivered(tmp_path, gate, http_receiver):
    with DripServer(interval_seconds=0.5) as peer:
        notifiers = pair(peer, http_receiver)
        outbox = Outbox(tmp_path)
        trigger = outbox.put(sample_notification("firing", receiver="drip"))
        resolve = outbox.put(sample_notification("resolved", receiver="drip"))
        outbox.put(sample_notification(receiver="good"))
        assert [f.receiver for f in drain(outbox, notifiers, gated_backoff(gate))] == ["drip"]
        outbox.put(sample_notification(receiver="good"))  # the next round's page for the good receiver
        assert [f.receiver for f in drain(outbox, notifiers, gated_backoff(gate))] == ["drip"]
        assert len(http_receiver.delivered) == 2  # both rounds paged the good receiver
        assert peer.connections_total == 1  # the resolve was never sent ahead of its trigger, nor in parallel
        assert [i for i, _ in outbox.pending()] == [trigger, resolve]


# --- the engine and the command ---------------------------------------------------------------------------------

def test_an_engine_round_with_a_dripping_receiver_returns_with_the_good_page_sent_and_the_drip_pending(
        duckdb_store, tmp_path, gate, http_receiver):
    with DripServer(interval_seconds=0.5) as peer:
        notifiers = pair(peer, http_receiver)
        engine = Engine(duckdb_store, [], [], notifiers, tmp_path / "state", backoff=gated_backoff(gate, 3))
        dripped = engine.outbox.put(sample_notification(receiver="drip"))
        engine.outbox.put(sample_notification(receiver="good"))
        report = engine.run_round()
        assert report.delivery_failures == 1 and report.error is None
        assert len(http_receiver.delivered) == 1
        assert [i for i, _ in engine.outbox.pending()] == [dripped]
        assert engine.run_round().delivery_failures == 1  # the next round: still under way, not sent again
        assert peer.connections_total == 1


@pytest.mark.slow
def test_alerts_once_exits_with_the_good_page_sent_and_the_dripping_receivers_notification_in_the_outbox(
        tmp_path, http_receiver):
    virtwatch = Path(sys.executable).parent / "virtwatch"
    with DripServer(interval_seconds=0.5) as peer:
        state = tmp_path / "alerts"
        outbox = Outbox(outbox_path(state))
        dripped = outbox.put(sample_notification(receiver="drip"))
        outbox.put(sample_notification(receiver="good"))
        config = tmp_path / "virtwatch.toml"
        config.write_text(f'[store]\nurl = "duckdb://{tmp_path}/store.duckdb"\n\n[alerts]\nstate_dir = "{state}"\n'
                          + "".join(f'\n[[alerts.receivers]]\nname = "{name}"\ntype = "webhook"\nurl = "{url}/hook"\n'
                                    f"timeout_seconds = {DEADLINE_SECONDS}\n"
                                    for name, url in (("drip", peer.url), ("good", http_receiver.url))))
        result = subprocess.run([str(virtwatch), "alerts", "--once", "--config", str(config)], capture_output=True,
                                text=True, timeout=GUARD_SECONDS, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert "1 failed to deliver" in result.stdout
    assert "receiver 'drip'" in result.stderr and "deadline" in result.stderr
    assert len(http_receiver.delivered) == 1
    assert [i for i, _ in Outbox(outbox_path(state)).pending()] == [dripped]
