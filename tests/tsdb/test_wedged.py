"""The agent counts a round's wedged guests by the same definition the stores filter by: tsdb.wedged's Python
predicate agrees with both stores' `matching` filter on every combination of state, reason and stats_partial."""

import itertools

import pytest

from tsdb import Point
from tsdb.query import matches
from tsdb.wedged import PAUSED, PAUSED_STARTING_UP, WEDGED_DOMAIN, counted, round_fields, wedged

S = 10**9
START = 1_709_294_400 * S
HOST = 'hv 1, "w"=\\ ü'


def combinations():
    """Every domain point's fields the agent may write: state and reason present or not, partial 0, 1 or absent."""
    for state, reason, partial in itertools.product((None, 1, PAUSED, 5), (None, 1, PAUSED_STARTING_UP, 12),
                                                    (None, 0, 1)):
        fields = {name: value for name, value in (("state_code", state), ("state_reason_code", reason),
                                                  ("stats_partial", partial)) if value is not None}
        if fields:
            yield fields


def test_a_missing_field_fails_its_test_and_a_flag_is_not_a_number():
    assert not matches({}, ((("stats_partial", "=", 1),),))
    assert not matches({"stats_partial": True}, ((("stats_partial", "=", 1),),))
    assert matches({"a": 2, "b": 5}, ((("a", "=", 1),), (("a", ">=", 2), ("b", "<", 6))))
    assert not matches({"a": 2, "b": 6}, ((("a", "=", 1),), (("a", ">=", 2), ("b", "<", 6))))


def test_a_partial_guest_is_wedged_unless_paused_starting_up():
    assert wedged({"state_code": 1, "state_reason_code": 1, "stats_partial": 1})
    assert wedged({"state_code": PAUSED, "state_reason_code": 1, "stats_partial": 1})
    assert not wedged({"state_code": PAUSED, "state_reason_code": PAUSED_STARTING_UP, "stats_partial": 1})
    assert not wedged({"state_code": 1, "state_reason_code": 1, "stats_partial": 0})
    assert not wedged({"state_code": 1, "state_reason_code": 1})


def test_a_round_counts_its_points_with_a_state_and_the_wedged_ones_among_them():
    fields = list(combinations())
    assert round_fields(fields) == {"domain_points": sum(map(counted, fields)),
                                    "wedged_points": sum(1 for f in fields if counted(f) and wedged(f))}
    assert round_fields([]) == {"domain_points": 0, "wedged_points": 0}


@pytest.mark.influxdb
def test_both_stores_filter_exactly_the_points_the_agent_counts_as_wedged(store):
    fields = list(combinations())
    store.write([Point("domain", {"host": HOST, "domain": f"vm {i}, ü"}, f, START + i * S)
                 for i, f in enumerate(fields)])
    found = store.query("domain", ["stats_partial"], START, START + len(fields) * S, window_seconds=3600,
                        aggregate="count", group_by=["host"], matching=WEDGED_DOMAIN)
    expected = sum(1 for f in fields if wedged(f))
    assert expected >= 4 and int(found["stats_partial"].sum()) == expected
