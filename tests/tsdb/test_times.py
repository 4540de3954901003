"""Time and durations (tsdb.times): one duration syntax read into seconds, one wording for a person, one label."""

from __future__ import annotations

import math
from datetime import timezone

import pytest

from tsdb.times import format_duration, duration_label, parse_duration, utc_now

READ = {
    "a whole number and a unit": ("30d", 30 * 86400),
    "weeks, as Alertmanager writes them": ("1w", 7 * 86400),
    "several parts add up": ("1h30m", 5400),
    "a fraction of a unit": ("1.5h", 5400),
    "a fraction of a second stays a fraction": ("0.5s", 0.5),
    "blanks around the text are ignored": (" 90s ", 90),
}


@pytest.mark.parametrize("text, seconds", READ.values(), ids=READ.keys())
def test_durations_are_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


def test_whole_durations_come_back_as_ints():
    assert type(parse_duration("30d")) is int and type(parse_duration("1.5h")) is int


REFUSED = {
    "a number without a unit": ("30", {}, "'30': expected a duration like 30m, 2h, 1d or 1h30m"),
    "an unknown unit": ("2x", {}, "'2x': expected a duration like 30m, 2h, 1d or 1h30m"),
    "a word": ("soon", {}, "'soon': expected a duration like 30m, 2h, 1d or 1h30m"),
    "something that is not text": (30, {}, "30: expected a duration like 30m, 2h, 1d or 1h30m"),
    "zero": ("0m", {}, "'0m': must be longer than 0"),
    "a fraction where whole numbers are asked for": ("1.5h", {"whole": True},
                                                     "'1.5h': expected whole numbers, a duration like 30m, 2h, 1d "
                                                     "or 1h30m"),
    "a duration too long for a float": ("9" * 400 + "w", {}, "too long"),
}


@pytest.mark.parametrize("text, options, message", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_duration_is_refused_naming_the_text_and_the_accepted_forms(text, options, message):
    with pytest.raises(ValueError) as raised:
        parse_duration(text, **options)
    assert str(raised.value).endswith(message)


SAID = {
    "under a minute in seconds, rounded down": (40.9, "40 s"),
    "nothing is 0 s": (0, "0 s"),
    "minutes alone": (3599, "59 min"),
    "a whole hour": (3600, "1 h"),
    "hours with their minutes": (3 * 3600 + 1260, "3 h 21 min"),
    "a day and a half": (36 * 3600, "1 d 12 h"),
    "whole days": (14 * 86400, "14 d"),
    "an endless one": (math.inf, "never"),
}


@pytest.mark.parametrize("seconds, text", SAID.values(), ids=SAID.keys())
def test_durations_are_written_in_one_wording(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds, label", [(300, "5m"), (3600, "1h"), (30 * 86400, "30d"), (90, "90s")])
def test_a_label_uses_the_largest_unit_that_divides_and_reads_back(seconds, label):
    assert duration_label(seconds) == label and parse_duration(label) == seconds


def test_now_is_timezone_aware_utc():
    assert utc_now().tzinfo is timezone.utc
