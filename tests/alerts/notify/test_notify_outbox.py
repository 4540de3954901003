"""The durable outbox, and draining it through real receivers: pending notifications survive a restart."""

import json
import logging

from alerts.notify import Outbox, drain, notifier_for
from alerts.notify.config import ReceiverConfig
from notify_conformance import no_sleep_backoff, sample_notification


def test_a_notification_put_in_the_outbox_survives_reopening_it(tmp_path):
    notification = sample_notification()
    outbox_id = Outbox(tmp_path).put(notification)
    assert Outbox(tmp_path).pending() == [(outbox_id, notification)]


def test_pending_lists_oldest_first_also_after_a_reopen(tmp_path):
    first = Outbox(tmp_path)
    ids = [first.put(sample_notification(receiver=f"r{n}")) for n in range(3)]
    later = Outbox(tmp_path)
    ids += [later.put(sample_notification(receiver=f"r{n}")) for n in range(3, 12)]
    assert [i for i, _ in Outbox(tmp_path).pending()] == ids
    assert [n.receiver for _, n in Outbox(tmp_path).pending()] == [f"r{n}" for n in range(12)]


def test_done_removes_a_notification_and_twice_is_harmless(tmp_path):
    outbox = Outbox(tmp_path)
    keep, drop = outbox.put(sample_notification("firing")), outbox.put(sample_notification("resolved"))
    outbox.done(drop)
    outbox.done(drop)
    assert [i for i, _ in Outbox(tmp_path).pending()] == [keep]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{keep}.json"]  # no temp files left behind


def test_an_unreadable_file_is_moved_aside_and_the_rest_still_delivered(tmp_path, caplog):
    outbox = Outbox(tmp_path)
    bad, good = outbox.put(sample_notification()), outbox.put(sample_notification())
    (tmp_path / f"{bad}.json").write_text('{"receiver": ')
    with caplog.at_level(logging.ERROR):
        assert [i for i, _ in outbox.pending()] == [good]
    assert (tmp_path / f"{bad}.json.corrupt").exists() and "unreadable" in caplog.text


def test_draining_delivers_in_order_and_keeps_what_an_outage_stopped(tmp_path, http_receiver):
    notifiers = {"oncall": notifier_for(ReceiverConfig(name="oncall", type="webhook", url=http_receiver.url))}
    outbox = Outbox(tmp_path)
    fired, resolved = outbox.put(sample_notification("firing")), outbox.put(sample_notification("resolved"))
    http_receiver.script(503, 503)  # the receiver is down for both attempts of the first notification
    failures = drain(outbox, notifiers, no_sleep_backoff(max_attempts=2))
    assert [(f.outbox_id, f.kept) for f in failures] == [(fired, True)]
    assert len(http_receiver.requests) == 2  # the resolve waits behind the trigger: never sent before it
    assert [i for i, _ in outbox.pending()] == [fired, resolved]

    # the engine restarts: a new outbox on the same directory, and the receiver is back
    failures = drain(Outbox(tmp_path), notifiers, no_sleep_backoff(max_attempts=2))
    assert failures == [] and Outbox(tmp_path).pending() == []
    statuses = [json.loads(r.body)["status"] for r in http_receiver.delivered]
    assert statuses == ["firing", "resolved"]  # each once, in order


def test_a_notification_failing_for_good_is_reported_and_leaves_the_outbox(tmp_path, http_receiver, caplog):
    notifiers = {"oncall": notifier_for(ReceiverConfig(name="oncall", type="webhook", url=http_receiver.url))}
    outbox = Outbox(tmp_path)
    rejected = outbox.put(sample_notification())
    orphan = outbox.put(sample_notification(receiver="removed-from-config"))
    http_receiver.script(400)
    with caplog.at_level(logging.ERROR):
        failures = drain(outbox, notifiers, no_sleep_backoff())
    assert [(f.outbox_id, f.receiver, f.kept) for f in failures] == [
        (rejected, "oncall", False), (orphan, "removed-from-config", False)]
    assert failures[0].error.status_code == 400 and len(http_receiver.requests) == 1
    assert outbox.pending() == []
    assert "answered 400" in caplog.text and "'removed-from-config' is not configured" in caplog.text
