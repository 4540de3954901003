"""Tests of alert silences: matchers, the silence window, and the JSON file shared by several processes."""

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.silences import (OPERATORS, RETENTION, Matcher, Silence, SilenceError, SilenceStore, parse_time)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)
HOSTILE = ['web 1', 'a,b', 'say "hi"', 'back\\slash', 'tab\there', 'new\nline', '  padded  ', 'Zoë 数据 🚀',
           '=~!=', 'x=y,z="w"', '\\"', '', '\x00nul', 'right\u202eleft']


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        """Start at now."""
        self.now = now

    def __call__(self) -> datetime:
        """Return the time the test set."""
        return self.now

    def advance(self, **delta) -> None:
        """Move the time on by timedelta(**delta)."""
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    """A hand-moved clock at T0."""
    return Clock()


@pytest.fixture
def silences(tmp_path, clock):
    """A silence store on a file in a directory that does not exist yet."""
    return SilenceStore(tmp_path / "state" / "silences.json", clock)


def web1():
    """Return matchers for host "web 1"."""
    return [Matcher("host", "=", "web 1")]


def add(silences, matchers=None, hours=2, **kwargs):
    """Add a silence of `hours` from the store's now, with an author and a comment."""
    ends_at = kwargs.pop("ends_at", None) or silences.clock() + timedelta(hours=hours)
    return silences.add(web1() if matchers is None else matchers, ends_at, created_by=kwargs.pop("created_by", "ops"),
                     comment=kwargs.pop("comment", "maintenance"), **kwargs)


# --- matchers -----------------------------------------------------------------------------------------------

MATCHER_CASES = {
    "equal matches the same value": ("host", "=", "web 1", {"host": "web 1"}, True),
    "equal does not match another value": ("host", "=", "web 1", {"host": "web 2"}, False),
    "not equal matches another value": ("host", "!=", "web 1", {"host": "web 2"}, True),
    "not equal does not match the same value": ("host", "!=", "web 1", {"host": "web 1"}, False),
    "a regex matches a whole value": ("alertname", "=~", "Libvirtd.*", {"alertname": "LibvirtdHung"}, True),
    "a regex does not match a value it is only a prefix of": ("host", "=~", "web", {"host": "web1"}, False),
    "a regex does not match a value it is only a suffix of": ("host", "=~", "web", {"host": "aweb"}, False),
    "a regex does not match a value with a trailing newline": ("host", "=~", "web", {"host": "web\n"}, False),
    "an alternation is anchored as a whole": ("host", "=~", "web|db", {"host": "webx"}, False),
    "an alternation matches either branch": ("host", "=~", "web|db", {"host": "db"}, True),
    "a negative regex matches a value it does not match whole": ("host", "!~", "web", {"host": "web1"}, True),
    "a negative regex does not match a value it matches": ("host", "!~", "web.*", {"host": "web1"}, False),
    "a missing label equals the empty string": ("host", "=", "", {}, True),
    "a missing label is not a set value": ("host", "=", "web", {}, False),
    "a missing label differs from a set value": ("host", "!=", "web", {}, True),
    "a missing label matches a regex matching empty": ("host", "=~", ".*", {}, True),
    "a missing label does not match a regex needing a character": ("host", "=~", ".+", {}, False),
    "a missing label matches a negative regex needing a character": ("host", "!~", ".+", {}, True),
    "values are compared exactly, case included": ("host", "=", "Web", {"host": "web"}, False),
    "a regex compares case too": ("host", "=~", "web", {"host": "WEB"}, False),
}


@pytest.mark.parametrize("name, op, value, labels, expected", MATCHER_CASES.values(), ids=MATCHER_CASES.keys())
def test_a_matcher_matches_labels_like_alertmanager(name, op, value, labels, expected):
    assert Matcher(name, op, value).matches(labels) is expected


def test_every_operator_is_covered_by_the_cases():
    assert {case[1] for case in MATCHER_CASES.values()} == set(OPERATORS)


PARSE_CASES = {
    "an unquoted value keeps its inner blank": ("host=web 1", Matcher("host", "=", "web 1")),
    "a regex operator is read before equals": ("alertname=~Libvirtd.*", Matcher("alertname", "=~", "Libvirtd.*")),
    "a quoted value keeps its comma": ('host!="a,b"', Matcher("host", "!=", "a,b")),
    "a negative regex": ("host!~web.*", Matcher("host", "!~", "web.*")),
    "blanks around name, operator and unquoted value are ignored": ("  host = web  ", Matcher("host", "=", "web")),
    "a quoted value keeps blanks at its ends": ('host="  web  "', Matcher("host", "=", "  web  ")),
    "a quoted value reads escapes": (r'host="say \"hi\" \\ \n"', Matcher("host", "=", 'say "hi" \\ \n')),
    "an empty value": ("host=", Matcher("host", "=", "")),
    "an equals sign after the operator belongs to the value": ("host==x", Matcher("host", "=", "=x")),
    "a quote inside an unquoted value is kept": ('host=a"b', Matcher("host", "=", 'a"b')),
    "a unicode value": ("domain=Zoë 数据", Matcher("domain", "=", "Zoë 数据")),
}


@pytest.mark.parametrize("text, expected", PARSE_CASES.values(), ids=PARSE_CASES.keys())
def test_parsing_a_matcher(text, expected):
    assert Matcher.parse(text) == expected


PARSE_ERRORS = {
    "no operator": ("host", "expected NAME OP VALUE"),
    "no name": ("=web", "label name missing"),
    "a name with a blank": ("host name=web", "label name 'host name' must match [A-Za-z_][A-Za-z0-9_]*"),
    "a name starting with a digit": ("1host=web", "label name '1host' must match"),
    "a bad regex": ("alertname=~(Libvirtd", "bad regular expression: missing ), unterminated subpattern"),
    "text after a quoted value": ('host="a" b', "is not one well-formed string"),
    "an unterminated quote": ('host="web', "is not one well-formed string"),
}


@pytest.mark.parametrize("text, reason", PARSE_ERRORS.values(), ids=PARSE_ERRORS.keys())
def test_a_bad_matcher_is_refused_naming_it_and_the_reason(text, reason):
    with pytest.raises(SilenceError) as error:
        Matcher.parse(text)
    assert str(error.value).startswith(f"matcher {text!r}: ")
    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_a_matcher_built_directly_is_checked_too():
    with pytest.raises(SilenceError, match=r"^matcher alertname=~\"\[\": bad regular expression"):
        Matcher("alertname", "=~", "[")
    with pytest.raises(SilenceError, match="operator '==' must be one of =, !=, =~, !~"):
        Matcher("host", "==", "web")
    with pytest.raises(SilenceError, match="label name 'host-name' must match"):
        Matcher("host-name", "=", "web")


def test_a_value_that_is_not_unicode_is_refused():
    with pytest.raises(SilenceError, match=r"value '\\udcff': not valid unicode"):
        Matcher.parse("host=\udcff")


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_round_trips_through_the_matchers_text(value):
    matcher = Matcher("host", "=", value)
    assert Matcher.parse(str(matcher)) == matcher


@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), op=st.sampled_from(["=", "!="]),
       value=st.text())
def test_any_matcher_round_trips_through_its_text(name, op, value):
    matcher = Matcher(name, op, value)
    assert Matcher.parse(str(matcher)) == matcher


# --- silences and their rules -------------------------------------------------------------------------------


def test_a_silence_mutes_labels_matching_every_matcher(silences):
    silence = add(silences, [Matcher("host", "=", "web 1"), Matcher("alertname", "=~", "Libvirtd.*")])
    assert silences.silencing({"host": "web 1", "alertname": "LibvirtdHung", "severity": "page"}) == silence
    assert silences.silencing({"host": "web 1", "alertname": "DomainCrashed"}) is None
    assert silences.silencing({"host": "web 2", "alertname": "LibvirtdHung"}) is None


def test_a_silence_needs_a_matcher(silences):
    with pytest.raises(SilenceError, match="^matchers: at least one matcher is required$"):
        add(silences, [])


def test_matchers_that_all_match_the_empty_string_are_refused(silences):
    with pytest.raises(SilenceError, match="at least one matcher must not match the empty string") as error:
        add(silences, [Matcher("host", "=~", ".*"), Matcher("alertname", "!=", "x")])
    assert 'host=~".*" alertname!="x"' in str(error.value)
    assert silences.list(include_expired=True) == []


def test_one_matcher_that_needs_a_value_is_enough(silences):
    silence = add(silences, [Matcher("host", "=~", ".*"), Matcher("alertname", "=", "LibvirtdDown")])
    assert silences.silencing({"alertname": "LibvirtdDown"}) == silence


@pytest.mark.parametrize("kwargs, reason", [
    ({"created_by": ""}, "created_by: required"),
    ({"created_by": "  "}, "created_by: required"),
    ({"comment": ""}, "comment: required"),
    ({"comment": "bad \udc80"}, "comment 'bad \\udc80': not valid unicode"),
], ids=["no author", "a blank author", "no comment", "a comment that is not unicode"])
def test_a_silence_needs_an_author_and_a_comment(silences, kwargs, reason):
    with pytest.raises(SilenceError, match="^" + reason.replace("\\", "\\\\")):
        add(silences, **kwargs)


def test_a_silence_must_end_after_now(silences, clock):
    with pytest.raises(SilenceError, match=r"^ends_at 2026-11-23T20:00:00Z: must be after now"):
        add(silences, ends_at=clock.now)


def test_a_silence_must_end_after_it_starts(silences, clock):
    with pytest.raises(SilenceError, match=r"^ends_at 2026-11-23T21:00:00Z: must be after starts_at "
                                           r"2026-11-23T22:00:00Z"):
        add(silences, ends_at=clock.now + timedelta(hours=1), starts_at=clock.now + timedelta(hours=2))


def test_times_without_a_zone_are_refused(silences, clock):
    with pytest.raises(SilenceError, match="^ends_at 2026-11-23T22:00:00: must be timezone-aware$"):
        add(silences, ends_at=datetime(2026, 11, 23, 22, 0))


def test_a_start_in_the_past_becomes_now(silences, clock):
    silence = add(silences, starts_at=clock.now - timedelta(hours=1))
    assert silence.starts_at == clock.now


def test_times_are_kept_in_utc(silences, clock):
    plus_one = timezone(timedelta(hours=1))
    silence = add(silences, ends_at=datetime(2026, 11, 24, 9, 0, tzinfo=plus_one))
    assert silence.ends_at == datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
    assert silence.ends_at.utcoffset() == timedelta(0)


def test_ids_are_distinct_uuid4_strings(silences):
    ids = [add(silences).id for _ in range(5)]
    assert len(set(ids)) == 5
    assert all(len(silence_id) == 36 and silence_id[14] == "4" for silence_id in ids)


def test_a_silence_round_trips_through_a_dict():
    silence = Silence("id-1", (Matcher("host", "=~", "web.*"),), T0, T0 + timedelta(hours=1), "ops", "why")
    assert Silence.from_dict(json.loads(json.dumps(silence.to_dict()))) == silence
    assert silence.to_dict()["ends_at"] == "2026-11-23T21:00:00Z"


def test_a_dict_missing_a_key_is_refused_naming_it():
    data = Silence("id-1", (Matcher("host", "=", "a"),), T0, T0, "ops", "why").to_dict()
    del data["comment"]
    with pytest.raises(SilenceError, match="^silence 'id-1': missing comment$"):
        Silence.from_dict(data)


# --- time: active, pending, expired -------------------------------------------------------------------------


def test_an_expired_silence_no_longer_mutes(silences, clock):
    silence = add(silences, hours=2)
    clock.advance(hours=1, minutes=59, seconds=59)
    assert silences.silencing({"host": "web 1"}) == silence
    clock.advance(seconds=1)
    assert silences.silencing({"host": "web 1"}) is None
    assert silence.state(clock.now) == "expired"


def test_a_pending_silence_mutes_only_from_its_start(silences, clock):
    silence = add(silences, hours=3, starts_at=clock.now + timedelta(hours=1))
    assert silence.state(clock.now) == "pending"
    assert silences.silencing({"host": "web 1"}) is None
    assert silences.list() == [silence]
    clock.advance(hours=1)
    assert silences.silencing({"host": "web 1"}) == silence


def test_expiring_a_silence_ends_it_now(silences, clock):
    silence = add(silences, hours=2)
    clock.advance(minutes=10)
    expired = silences.expire(silence.id)
    assert (expired.id, expired.starts_at, expired.ends_at) == (silence.id, silence.starts_at, clock.now)
    assert silences.silencing({"host": "web 1"}) is None
    assert silences.list() == []
    assert silences.list(include_expired=True) == [expired]


def test_expiring_a_pending_silence_means_it_never_starts(silences, clock):
    silence = add(silences, hours=3, starts_at=clock.now + timedelta(hours=1))
    expired = silences.expire(silence.id)
    assert expired.starts_at == expired.ends_at == clock.now
    clock.advance(hours=2)
    assert silences.silencing({"host": "web 1"}) is None


def test_expiring_an_unknown_id_names_it(silences):
    add(silences)
    with pytest.raises(SilenceError, match=r"^silence id 'nope': no such silence in .*silences\.json$"):
        silences.expire("nope")


def test_expiring_twice_says_when_it_ended(silences, clock):
    silence = add(silences)
    silences.expire(silence.id)
    with pytest.raises(SilenceError, match=rf"^silence id '{silence.id}': already expired at 2026-11-23T20:00:00Z"):
        silences.expire(silence.id)


def test_list_shows_active_and_pending_newest_first_then_expired_latest_end_first(silences, clock):
    first = add(silences, hours=10)
    clock.advance(minutes=1)
    second = add(silences, hours=10)
    pending = add(silences, hours=10, starts_at=clock.now + timedelta(hours=1))
    short = add(silences, ends_at=clock.now + timedelta(seconds=36))
    long_gone = add(silences, ends_at=clock.now + timedelta(seconds=18))
    clock.advance(minutes=30)
    assert silences.list() == [pending, second, first]
    assert silences.list(include_expired=True) == [pending, second, first, short, long_gone]


def test_get_returns_a_silence_by_id(silences):
    silence = add(silences)
    assert silences.get(silence.id) == silence
    with pytest.raises(SilenceError, match="^silence id 'nope': no such silence"):
        silences.get("nope")


# --- retention ----------------------------------------------------------------------------------------------


def test_expired_silences_are_kept_five_days_then_pruned_on_the_next_write(silences, clock):
    assert RETENTION == timedelta(hours=120)
    old = add(silences, hours=1)
    clock.advance(hours=1)  # old has just expired
    clock.advance(hours=120, seconds=-1)
    kept = add(silences)  # a write within the retention keeps it
    assert old.id in silences.path.read_text()
    assert silences.list(include_expired=True) == [kept, old]
    clock.advance(seconds=1)
    assert silences.list(include_expired=True) == [kept]  # no longer listed, though the file still holds it
    assert old.id in silences.path.read_text()
    newest = add(silences)
    assert old.id not in silences.path.read_text()
    assert silences.list(include_expired=True) == [newest, kept]


# --- the file -----------------------------------------------------------------------------------------------


def test_a_missing_file_holds_no_silences_and_reading_creates_nothing(silences):
    assert silences.list(include_expired=True) == []
    assert silences.silencing({"host": "web 1"}) is None
    assert not silences.path.parent.exists()


def test_another_store_on_the_same_file_sees_every_silence(silences, clock):
    silence = add(silences)
    other = SilenceStore(silences.path, clock)
    assert other.list() == [silence]
    other.expire(silence.id)
    assert silences.silencing({"host": "web 1"}) is None


def test_hostile_values_round_trip_exactly_through_the_file(silences, clock):
    matchers = [Matcher(f"label_{index}", "=", value) for index, value in enumerate(HOSTILE)]
    matchers.append(Matcher("alertname", "=~", 'Libvirtd(Hung|Down)\\s"é"'))
    silence = add(silences, matchers, created_by="Zoë \"ops\" \\ 数据", comment="why,\nbecause \u202e 🚀\t\\n")
    again = SilenceStore(silences.path, clock).list()
    assert again == [silence]
    assert [m.value for m in again[0].matchers[:len(HOSTILE)]] == HOSTILE
    assert again[0].comment == "why,\nbecause \u202e 🚀\t\\n"
    labels = {f"label_{index}": value for index, value in enumerate(HOSTILE)}
    assert SilenceStore(silences.path, clock).silencing({**labels, "alertname": 'LibvirtdHung "é"'}) == silence


def test_the_file_is_plain_json_readable_by_others(silences):
    silence = add(silences)
    data = json.loads(silences.path.read_text("utf-8"))
    assert data == {"version": 1, "silences": [silence.to_dict()]}
    assert parse_time(data["silences"][0]["ends_at"]) == silence.ends_at


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 99, "silences": []}', b"\xff\xfe",
                                     b'{"version": 1, "silences": [{"id": "x"}]}', b"[]"],
                         ids=["broken json", "another version", "not utf-8", "a silence missing keys", "a list"])
def test_a_corrupt_file_is_an_error_naming_its_path_and_is_left_alone(silences, content):
    silences.path.parent.mkdir(parents=True)
    silences.path.write_bytes(content)
    with pytest.raises(SilenceError, match=rf"^silences file {re.escape(str(silences.path))}: corrupt \("):
        silences.list()
    with pytest.raises(SilenceError, match=rf"^silences file {re.escape(str(silences.path))}: corrupt \("):
        add(silences)
    assert silences.path.read_bytes() == content


def test_an_unwritable_directory_is_an_error_naming_the_file(tmp_path, clock):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    silences = SilenceStore(blocker / "silences.json", clock)
    path = re.escape(str(blocker / "silences.json"))
    with pytest.raises(SilenceError, match=rf"^silences file {path}: cannot lock"):
        add(silences)


ADDER = """
import sys
from datetime import datetime, timedelta, timezone
from alerts.silences import Matcher, SilenceStore
path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
silences = SilenceStore(path)
sys.stdin.readline()  # both processes start adding at once
for index in range(count):
    silences.add([Matcher("host", "=", f"{tag}-{index}")], datetime.now(timezone.utc) + timedelta(hours=1),
              created_by=tag, comment="concurrent")
"""


def test_two_processes_adding_at_once_lose_nothing(tmp_path):
    path = tmp_path / "silences.json"
    count = 40
    processes = [subprocess.Popen([sys.executable, "-c", ADDER, str(path), tag, str(count)], cwd=ROOT,
                                  stdin=subprocess.PIPE) for tag in ("first", "second")]
    for process in processes:
        process.stdin.write(b"go\n")
        process.stdin.flush()
    for process in processes:
        process.stdin.close()
        assert process.wait() == 0
    silences = SilenceStore(path).list()
    assert len({silence.id for silence in silences}) == 2 * count
    assert {silence.matchers[0].value for silence in silences} == {
        f"{tag}-{index}" for tag in ("first", "second") for index in range(count)}


# --- regexes: linear time, whatever the pattern ---------------------------------------------------------------

#: 2**60 ways to match (a|a)* against it: a backtracking engine would not finish before the sun goes out
LONG_A = "a" * 60


@pytest.mark.parametrize("pattern, value, expected", [
    ("(a|a)*b", LONG_A, False),
    ("(a|a)*b", LONG_A + "b", True),
    ("(a|a)*", LONG_A, True),
    ("(a*)*b", LONG_A, False),
    ("(a|aa)+$b", LONG_A, False),
    ("(.*a){30}b", LONG_A, False),
    (".*.*.*.*.*.*.*.*b", "a" * 4096, False),
    ("(x+x+)+y", "x" * 4000, False),
], ids=["alternatives that overlap, no match", "alternatives that overlap, a match",
        "alternatives that overlap, all the value", "a nested star", "an anchor between repeats",
        "a counted repeat of a star", "eight stars in a row", "the classic (x+x+)+y"])
def test_a_pathological_regex_takes_linear_time(pattern, value, expected):
    assert Matcher("host", "=~", pattern).matches({"host": value}) is expected
    assert Matcher("host", "!~", pattern).matches({"host": value}) is (not expected)


def test_a_pathological_silence_is_decided_in_the_engines_round(duckdb_store, tmp_path, clock):
    from alerts.engine import Engine
    from alerts.event_rules import DaemonDownRule
    from tsdb import Point

    clock.now = datetime.now(timezone.utc).replace(microsecond=0)
    engine = Engine(duckdb_store, [], [DaemonDownRule(after_seconds=5)], {}, tmp_path / "state", clock=clock)
    hosts = [LONG_A, LONG_A + "b"]
    duckdb_store.write([Point("event", {"host": host, "kind": "daemon_down", "severity": "critical"},
                              {"message": "down", "count": 1}, int((clock.now.timestamp() - 60) * 10**9))
                        for host in hosts])
    engine.silences.add([Matcher("host", "=~", "(a|a)*b")], clock.now + timedelta(hours=1), created_by="ops",
                        comment="pathological")
    report = engine.run_round()
    assert report.error is None
    firing = {alert.labels["host"]: alert for alert in engine.tracker.firing()}
    assert set(firing) == set(hosts)
    assert engine.silences.silencing(firing[LONG_A].labels) is None
    assert engine.silences.silencing(firing[LONG_A + "b"].labels) is not None


@given(pattern=st.recursive(
    st.sampled_from(["a", "b", "A", "_", "\\n", " ", "1", "é", ".", "[ab]", "[^a]", "[a-z]", "\\d", "\\w", "\\s",
                     "\\W", "\\b", "\\B", "^", "$", "\\A", "\\Z", "(?:)"]),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join), st.tuples(inner, inner).map("|".join),
        inner.map(lambda p: f"({p})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,3}", "*?", "+?", "??"])).map(
            lambda t: f"(?:{t[0]}){t[1]}"),
        st.tuples(st.sampled_from("imsa"), inner).map(lambda t: f"(?{t[0]}:{t[1]})")),
    max_leaves=8),
    values=st.lists(st.text(alphabet="aAb_ \n1é", max_size=6), min_size=1, max_size=6))
def test_a_regex_matches_exactly_what_pythons_re_matches(pattern, values):
    try:
        expected = re.compile(f"(?:{pattern})")
    except re.error:
        return
    matcher = Matcher("label", "=~", pattern)
    for value in values:
        assert matcher.matches({"label": value}) is (expected.fullmatch(value) is not None), (pattern, value)


@pytest.mark.parametrize("pattern, what", [
    (r"(a)\1", "a backreference"),
    (r"(?P<x>a)(?P=x)", "a backreference"),
    ("(?=a)a", "a lookaround"),
    ("(?<!b)a", "a lookaround"),
    ("(a)?(?(1)a|b)", "a conditional group"),
    ("(?>a+)", "an atomic group"),
    ("a++", "a possessive repeat"),
    ("a{1001}", "a repeat of more than 1000"),
    ("(a{100}){100}", "too large: more than 4096 states"),
])
def test_a_regex_only_backtracking_could_match_is_refused_at_creation(silences, pattern, what):
    with pytest.raises(SilenceError) as caught:
        Matcher.parse(f"host=~{pattern}")
    assert f"regular expression not supported: {what}" in str(caught.value)
    assert not silences.path.exists()


def test_a_value_too_long_satisfies_no_regex_matcher():
    from alerts.silences import REGEX_MAX_VALUE_CHARS

    long_value = "a" * (REGEX_MAX_VALUE_CHARS + 1)
    assert not Matcher("host", "=~", "a*").matches({"host": long_value})
    assert not Matcher("host", "!~", "b*").matches({"host": long_value})  # so it is never muted by a regex
    assert Matcher("host", "=", long_value).matches({"host": long_value})


def test_a_refused_regex_in_an_older_file_is_kept_and_mutes_nothing(silences, clock):
    good = add(silences)
    data = json.loads(silences.path.read_text())
    old = {**good.to_dict(), "id": "old", "matchers": [{"name": "host", "op": "=~", "value": r"(a)\1"}]}
    data["silences"].append(old)
    silences.path.write_text(json.dumps(data))
    assert {s.id for s in silences.list()} == {good.id, "old"}
    assert silences.silencing({"host": "aa"}) is None
    assert silences.silencing({"host": "web 1"}) == good


def test_a_silence_may_end_in_the_year_9999(silences):
    forever = add(silences, ends_at=datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc))
    assert silences.list() == [forever] and silences.silencing({"host": "web 1"}) == forever
