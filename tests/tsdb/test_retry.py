"""tsdb.retry, the one place that says whether a request is worth another try and how long to wait first:
the store client and the notifiers each keep their own parameters and jitter through it."""

import random

import pytest

from alerts.notify import NotifyBackoff
from tsdb import open_store
from tsdb.retry import Backoff, is_retryable


@pytest.mark.parametrize("status, retryable", [
    (None, True), (429, True), (500, True), (502, True), (503, True), (504, True), (599, True),
    (400, False), (401, False), (403, False), (404, False), (409, False), (413, False), (301, False), (204, False),
])
def test_no_answer_5xx_and_429_are_worth_another_try_and_nothing_else(status, retryable):
    assert is_retryable(status) is retryable


def test_tries_can_be_counted_as_retries_or_as_attempts():
    assert Backoff(max_retries=3).max_attempts == 4 and Backoff(max_attempts=4).max_retries == 3
    assert Backoff().max_retries == 5  # the store client's default
    with pytest.raises(ValueError, match="not both"):
        Backoff(max_retries=1, max_attempts=2)
    with pytest.raises(ValueError, match="at least 1"):
        Backoff(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter="none")


def test_equal_jitter_waits_between_half_the_cap_and_the_cap_so_waits_only_grow():
    backoff = Backoff(max_retries=6, base_seconds=1.0, max_seconds=8.0, rng=random.Random(5))
    caps = [1, 2, 4, 8, 8]
    for retry, cap in enumerate(caps):
        samples = [backoff.delay(retry) for _ in range(200)]
        assert all(cap / 2 <= s <= cap for s in samples)
    waits = [backoff.delay(retry) for retry in range(4)]
    assert waits == sorted(waits)


def test_full_jitter_waits_anywhere_from_zero_to_the_cap():
    backoff = Backoff(max_attempts=6, base_seconds=1.0, max_seconds=4.0, jitter="full", rng=random.Random(5))
    samples = [backoff.delay(3) for _ in range(400)]
    assert all(0 <= s <= 4 for s in samples) and min(samples) < 0.4 and max(samples) > 3.6


def test_wait_sleeps_through_the_injected_sleep_and_says_how_long():
    slept = []
    backoff = Backoff(base_seconds=1.0, max_seconds=1.0, sleep=slept.append, rng=random.Random(1))
    assert [backoff.wait(0), backoff.wait(1)] == slept and len(slept) == 2


def test_the_notifiers_keep_their_defaults_full_jitter_from_one_second_up_to_a_minute():
    backoff = NotifyBackoff()
    assert isinstance(backoff, Backoff)
    assert (backoff.max_attempts, backoff.base_seconds, backoff.max_seconds, backoff.jitter) == (5, 1.0, 60.0, "full")


def test_the_store_client_keeps_its_defaults_equal_jitter_from_a_fifth_of_a_second_up_to_ten():
    store = open_store("influxdb://127.0.0.1:9/db", max_retries=2)
    try:
        backoff = store.backoff
        assert (backoff.max_retries, backoff.base_seconds, backoff.max_seconds, backoff.jitter) == (2, 0.2, 10.0, "equal")
    finally:
        store.close()
