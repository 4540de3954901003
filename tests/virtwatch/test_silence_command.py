"""Tests of `virtwatch silence add|list|expire`, through virtwatch.cli.main and once as the installed command."""

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from alerts.silences import SilenceStore
from virtwatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
VIRTWATCH = Path(sys.executable).parent / "virtwatch"  # .venv/bin/virtwatch: the entry point beside this python
HOSTILE_VALUE = 'web 1, "quoted" \\ Zoë 数据 🚀'


@pytest.fixture
def clean_environ(monkeypatch):
    """Remove VIRTWATCH_* variables so the developer's environment cannot change results."""
    for name in list(os.environ):
        if name.startswith("VIRTWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path, clean_environ):
    """A config file whose [alerts] state_dir is a temp dir; returns its path."""
    path = tmp_path / "virtwatch.toml"
    path.write_text(f"[alerts]\nstate_dir = {json.dumps(str(tmp_path / 'state'))}\n")
    return path


def silences_file(config: Path) -> Path:
    """Return the silences file the config fixture's state_dir holds."""
    return config.parent / "state" / "silences.json"


def run(capsys, *argv):
    """Run `virtwatch ARGV` in this process; return (status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def add(capsys, config, *matchers, duration="2h", comment="maintenance", author="ops"):
    """Add a silence through the command; return its id."""
    status, out, err = run(capsys, "silence", "add", "--config", config, "--duration", duration,
                           "--comment", comment, "--author", author, *matchers)
    assert (status, err) == (0, "")
    return out.strip()


def listed(capsys, config, *flags):
    """Return `silence list --json` as data."""
    status, out, err = run(capsys, "silence", "list", "--config", config, "--json", *flags)
    assert (status, err) == (0, "")
    return json.loads(out)


def test_add_prints_the_id_of_a_silence_the_engine_sees(capsys, config):
    silence_id = add(capsys, config, "host=web 1", "alertname=~Libvirtd.*")
    silence = SilenceStore(silences_file(config)).silencing({"host": "web 1", "alertname": "LibvirtdHung"})
    assert silence is not None and silence.id == silence_id
    assert (silence.created_by, silence.comment) == ("ops", "maintenance")
    assert timedelta(hours=2) - (silence.ends_at - silence.starts_at) < timedelta(seconds=1)


def test_add_until_a_time_with_a_zone(capsys, config):
    add_id = run(capsys, "silence", "add", "--config", config, "--until", "2099-11-24T09:00+01:00",
                 "--comment", "long", "host=db")[1].strip()
    [row] = listed(capsys, config)
    assert (row["id"], row["ends_at"]) == (add_id, "2099-11-24T08:00:00Z")


@pytest.mark.parametrize("duration, expected", [
    ("30m", timedelta(minutes=30)), ("1d", timedelta(days=1)), ("1h30m", timedelta(hours=1, minutes=30)),
    ("1.5h", timedelta(hours=1.5)), ("1w", timedelta(weeks=1)), ("90s", timedelta(seconds=90))])
def test_durations_read_like_alertmanagers(capsys, config, duration, expected):
    add(capsys, config, "host=db", duration=duration)
    [row] = listed(capsys, config)
    length = datetime.fromisoformat(row["ends_at"]) - datetime.fromisoformat(row["starts_at"])
    assert abs(length - expected) < timedelta(seconds=1)


def test_the_author_defaults_to_user_at_hostname(capsys, config, monkeypatch):
    monkeypatch.setenv("USER", "alice")
    run(capsys, "silence", "add", "--config", config, "--duration", "1h", "--comment", "c", "host=db")
    assert listed(capsys, config)[0]["created_by"] == f"alice@{socket.gethostname()}"


def test_list_prints_a_readable_table(capsys, config):
    first = add(capsys, config, "host=web 1", "alertname=~Libvirtd.*", comment="kernel upgrade", author="alice")
    status, out, err = run(capsys, "silence", "list", "--config", config)
    assert (status, err) == (0, "")
    header, row = out.splitlines()
    assert header.split() == ["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "AUTHOR", "COMMENT"]
    assert row.startswith(f"{first}  active  ")
    assert 'host="web 1" alertname=~"Libvirtd.*"' in row
    assert row.endswith("  alice   kernel upgrade")
    assert row.index("alice") == header.index("AUTHOR")


def test_list_shows_newlines_and_tabs_escaped_so_each_silence_is_one_line(capsys, config):
    add(capsys, config, "host=db", comment="line one\nline two\tend", author="bob")
    status, out, _ = run(capsys, "silence", "list", "--config", config)
    assert len(out.splitlines()) == 2
    assert out.splitlines()[1].endswith("bob     line one\\nline two\\tend")


def test_list_says_when_there_is_nothing_to_show(capsys, config):
    assert run(capsys, "silence", "list", "--config", config) == (
        0, "no active or pending silences (--all shows expired ones)\n", "")
    assert listed(capsys, config) == []


def test_expire_ends_a_silence_and_list_all_still_shows_it(capsys, config):
    silence_id = add(capsys, config, "host=web 1")
    status, out, err = run(capsys, "silence", "expire", "--config", config, silence_id)
    assert (status, err) == (0, "")
    assert out == f'expired {silence_id}: host="web 1" (by ops: maintenance)\n'
    assert listed(capsys, config) == []
    [row] = listed(capsys, config, "--all")
    assert (row["id"], row["state"]) == (silence_id, "expired")
    assert SilenceStore(silences_file(config)).silencing({"host": "web 1"}) is None
    status, out, _ = run(capsys, "silence", "list", "--config", config, "--all")
    assert f"{silence_id}  expired" in out


def test_hostile_values_round_trip_through_the_command(capsys, config):
    comment = 'why, "because"\n\\ é 🚀'
    add(capsys, config, f"host={json.dumps(HOSTILE_VALUE, ensure_ascii=False)}", "alertname!~ spaced ",
        comment=comment, author="Zoë 数据")
    [row] = listed(capsys, config)
    assert row["matchers"] == [{"name": "host", "op": "=", "value": HOSTILE_VALUE},
                               {"name": "alertname", "op": "!~", "value": "spaced"}]
    assert (row["comment"], row["created_by"]) == (comment, "Zoë 数据")


def test_without_config_the_default_state_dir_is_used(capsys, tmp_path, monkeypatch, clean_environ):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    status, out, err = run(capsys, "silence", "add", "--duration", "1h", "--comment", "c", "host=db")
    assert (status, err) == (0, "")
    [silence] = SilenceStore(tmp_path / "data" / "virtwatch" / "alerts" / "silences.json").list()
    assert silence.id == out.strip()


BAD_INPUT = {
    "a duration that is not one": (["add", "--duration", "2x", "--comment", "c", "host=a"],
                                   "virtwatch silence add: argument --duration: '2x': expected a duration like"),
    "a zero duration": (["add", "--duration", "0m", "--comment", "c", "host=a"],
                        "argument --duration: '0m': must be longer than 0"),
    "both a duration and an end": (["add", "--duration", "1h", "--until", "2099-01-01T00:00Z", "--comment", "c",
                                    "host=a"], "argument --until: not allowed with argument --duration"),
    "neither a duration nor an end": (["add", "--comment", "c", "host=a"],
                                      "one of the arguments --duration --until is required"),
    "an end in the past": (["add", "--until", "2020-01-01T00:00Z", "--comment", "c", "host=a"],
                           "virtwatch silence add: --until 2020-01-01T00:00:00Z: must be in the future"),
    "an end without a zone": (["add", "--until", "2099-01-01T00:00", "--comment", "c", "host=a"],
                              "argument --until: '2099-01-01T00:00': give a time zone"),
    "an end that is no time": (["add", "--until", "tomorrow", "--comment", "c", "host=a"],
                               "argument --until: 'tomorrow': expected an ISO 8601 time"),
    "no comment": (["add", "--duration", "1h", "host=a"], "the following arguments are required: --comment"),
    "a blank comment": (["add", "--duration", "1h", "--comment", " ", "host=a"], "--comment: must not be empty"),
    "a blank author": (["add", "--duration", "1h", "--comment", "c", "--author", "", "host=a"],
                       "--author: must not be empty"),
    "no matcher": (["add", "--duration", "1h", "--comment", "c"], "the following arguments are required: MATCHER"),
    "a matcher without an operator": (["add", "--duration", "1h", "--comment", "c", "host"],
                                      "virtwatch silence add: matcher 'host': expected NAME OP VALUE"),
    "a bad regex": (["add", "--duration", "1h", "--comment", "c", "alertname=~(Libvirtd"],
                    "matcher 'alertname=~(Libvirtd': bad regular expression: missing ), unterminated subpattern"),
    "matchers muting everything": (["add", "--duration", "1h", "--comment", "c", "host=~.*"],
                                   'matchers host=~".*": at least one matcher must not match the empty string'),
    "a matcher that is not unicode": (["add", "--duration", "1h", "--comment", "c", "host=\udcff"],
                                      "matcher 'host=\\udcff': value '\\udcff': not valid unicode"),
    "an unknown id": (["expire", "no-such-id"], "virtwatch silence expire: silence id 'no-such-id': no such silence"),
    "no id": (["expire"], "the following arguments are required: ID"),
    "no action": ([], "virtwatch silence: the following arguments are required: ACTION"),
    "an unknown action": (["mute"], "argument ACTION: invalid choice: 'mute'"),
    "an unknown flag": (["list", "--colour"], "virtwatch silence list: unrecognized arguments: --colour"),
}


@pytest.mark.parametrize("argv, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_with_one_line_naming_the_argument_and_the_reason(capsys, config, argv, message):
    if argv and argv[0] in ("add", "list", "expire"):
        argv = [argv[0], "--config", str(config), *argv[1:]]
    status, out, err = run(capsys, "silence", *argv)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.endswith("\n")
    assert message in err
    assert not silences_file(config).exists()


def test_a_bad_config_file_is_reported_by_key(capsys, tmp_path, clean_environ):
    path = tmp_path / "bad.toml"
    path.write_text('[alerts]\nstate_dir = 3\n')
    status, out, err = run(capsys, "silence", "list", "--config", path)
    assert (status, out) == (2, "")
    assert err == f"{path}: alerts.state_dir = 3: expected a path string, got an integer\n"


def test_a_corrupt_silences_file_is_reported_with_its_path(capsys, config):
    silences_file(config).parent.mkdir()
    silences_file(config).write_text("{oops")
    status, out, err = run(capsys, "silence", "list", "--config", config)
    assert (status, out) == (2, "")
    assert err.startswith(f"virtwatch silence list: silences file {silences_file(config)}: corrupt (")
    assert len(err.splitlines()) == 1


def test_expiring_twice_is_an_error(capsys, config):
    silence_id = add(capsys, config, "host=a")
    assert run(capsys, "silence", "expire", "--config", config, silence_id)[0] == 0
    status, _, err = run(capsys, "silence", "expire", "--config", config, silence_id)
    assert status == 2 and f"silence id '{silence_id}': already expired at " in err


def virtwatch(*argv):
    """Run the installed `virtwatch` command in a fresh process."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIRTWATCH_")}
    return subprocess.run([str(VIRTWATCH), *map(str, argv)], cwd=ROOT, env=environ, capture_output=True, text=True)


def test_the_real_command_adds_lists_and_expires(config):
    added = virtwatch("silence", "add", "--config", config, "--duration", "2h", "--comment", "reboot",
                      "--author", "ops", f"host={json.dumps(HOSTILE_VALUE, ensure_ascii=False)}")
    assert (added.returncode, added.stderr) == (0, "")
    silence_id = added.stdout.strip()
    listing = virtwatch("silence", "list", "--config", config, "--json")
    assert (listing.returncode, listing.stderr) == (0, "")
    assert [(row["id"], row["state"], row["matchers"][0]["value"]) for row in json.loads(listing.stdout)] == [
        (silence_id, "active", HOSTILE_VALUE)]
    table = virtwatch("silence", "list", "--config", config)
    assert table.returncode == 0 and f"{silence_id}  active" in table.stdout
    expired = virtwatch("silence", "expire", "--config", config, silence_id)
    assert (expired.returncode, expired.stderr) == (0, "")
    assert expired.stdout.startswith(f"expired {silence_id}: ")
    assert SilenceStore(silences_file(config)).silencing({"host": HOSTILE_VALUE}) is None
    bad = virtwatch("silence", "add", "--config", config, "--duration", "soon", "--comment", "c", "host=a")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.splitlines() == [
        "virtwatch silence add: argument --duration: 'soon': expected a duration like 30m, 2h, 1d or 1h30m "
        "(see virtwatch silence add --help)"]
