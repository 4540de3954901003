"""Delivery through a real HTTP receiver on 127.0.0.1: retries what may pass, reports what never will."""

import random

import pytest

from alerts.notify import Backoff, NotifyError, deliver, is_retryable, notifier_for
from alerts.notify.config import ReceiverConfig
from notify_conformance import no_sleep_backoff, sample_notification
from receivers import TIMEOUT

CLIENT_TIMEOUT_SECONDS = 0.3


def webhook(url: str) -> ReceiverConfig:
    return ReceiverConfig(name="hook", type="webhook", url=url + "/hook", timeout_seconds=CLIENT_TIMEOUT_SECONDS)


@pytest.mark.parametrize("status, retryable", [
    (None, True), (500, True), (502, True), (503, True), (599, True), (429, True),
    (400, False), (401, False), (403, False), (404, False), (410, False), (413, False), (301, False),
])
def test_only_no_answer_5xx_and_429_are_worth_a_retry(status, retryable):
    assert is_retryable(status) is retryable


def test_backoff_waits_a_uniform_random_time_up_to_a_doubling_capped_bound():
    backoff = Backoff(base_seconds=1.0, max_seconds=8.0, max_attempts=10, rng=random.Random(7))
    caps = [1, 2, 4, 8, 8, 8]
    waits = [[backoff.delay(attempt) for _ in range(200)] for attempt in range(len(caps))]
    for cap, samples in zip(caps, waits):
        assert all(0.0 <= s <= cap for s in samples)
        assert max(samples) > 0.8 * cap  # full jitter reaches up to the cap, not only its lower half
        assert min(samples) < 0.2 * cap  # ... and down to near zero


def test_backoff_with_the_same_seed_waits_the_same():
    first = Backoff(rng=random.Random(3))
    second = Backoff(rng=random.Random(3))
    assert [first.delay(n) for n in range(5)] == [second.delay(n) for n in range(5)]


def test_a_notification_is_delivered_exactly_once_after_500_timeout_429_then_recovery(http_receiver):
    http_receiver.script(500, TIMEOUT, 429, 200)
    slept = []
    backoff = Backoff(base_seconds=1.0, max_seconds=4.0, max_attempts=5, sleep=slept.append,
                      rng=random.Random(1))
    deliver(notifier_for(webhook(http_receiver.url)), sample_notification(), backoff)
    assert [r.answered for r in http_receiver.requests] == [500, None, 429, 200]
    assert len(http_receiver.delivered) == 1
    assert len(slept) == 3 and all(0 <= s <= cap for s, cap in zip(slept, [1, 2, 4]))


def test_a_refused_connection_is_retried_until_the_receiver_listens(unstarted_receiver):
    def sleep(seconds):
        if not unstarted_receiver.requests and unstarted_receiver._server is None:
            unstarted_receiver.start()  # the receiver comes back during the first wait

    notifier = notifier_for(webhook(unstarted_receiver.url))
    with pytest.raises(NotifyError, match="connection refused") as refused:
        notifier.send(sample_notification())
    assert refused.value.retryable and refused.value.status_code is None
    deliver(notifier, sample_notification(), Backoff(max_attempts=3, sleep=sleep))
    assert len(unstarted_receiver.delivered) == 1 and len(unstarted_receiver.requests) == 1


def test_a_timeout_is_a_retryable_error_naming_the_timeout(http_receiver):
    http_receiver.script(TIMEOUT)
    with pytest.raises(NotifyError, match="timeout") as caught:
        notifier_for(webhook(http_receiver.url)).send(sample_notification())
    assert caught.value.retryable


def test_a_400_is_not_retried_and_is_reported_with_the_answer(http_receiver):
    http_receiver.reply_body = b'{"error": "invalid payload"}'
    http_receiver.script(400)
    with pytest.raises(NotifyError) as caught:
        deliver(notifier_for(webhook(http_receiver.url)), sample_notification(), no_sleep_backoff(5))
    assert len(http_receiver.requests) == 1
    error = caught.value
    assert not error.retryable and error.status_code == 400
    assert "webhook receiver 'hook'" in error.message and "400" in error.message
    assert "invalid payload" in error.message


def test_after_max_attempts_the_last_retryable_error_is_raised(http_receiver):
    http_receiver.script(500, 502, 503)
    with pytest.raises(NotifyError) as caught:
        deliver(notifier_for(webhook(http_receiver.url)), sample_notification(), no_sleep_backoff(3))
    assert caught.value.retryable and caught.value.status_code == 503
    assert len(http_receiver.requests) == 3 and not http_receiver.delivered
