"""Durable writes (tsdb.durable): a file is private (0600) whatever the umask, outside systemd as under it; a file
root writes keeps its owner, so the service user can still read it; a failed write leaves the old whole and no
temp file."""

from __future__ import annotations

import os
import stat

import pytest

from tsdb.durable import PRIVATE_FILE_MODE, temp_path, write_durably

NOBODY = 65534


@pytest.fixture
def umask():
    """Set a umask for the test (the process's umask is global: restored afterwards)."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o000, 0o002, 0o022, 0o077])
def test_a_file_written_durably_is_0600_whatever_the_umask(tmp_path, umask, mask):
    umask(mask)
    write_durably(tmp_path / "alerts.json", b"{}")
    assert mode(tmp_path / "alerts.json") == PRIVATE_FILE_MODE == 0o600
    assert (tmp_path / "alerts.json").read_bytes() == b"{}"


def test_a_file_that_was_readable_by_all_becomes_0600_when_replaced(tmp_path, umask):
    umask(0)
    path = tmp_path / "silences.json"
    path.write_bytes(b"old")
    os.chmod(path, 0o666)
    write_durably(path, b"new")
    assert mode(path) == 0o600 and path.read_bytes() == b"new"


def test_a_temp_file_left_by_a_crash_with_another_mode_does_not_pass_it_on(tmp_path, umask):
    umask(0)
    stale = tmp_path / ".alerts.json.tmp"
    stale.write_bytes(b"half of a write")
    os.chmod(stale, 0o666)
    write_durably(tmp_path / "alerts.json", b"whole")
    assert mode(tmp_path / "alerts.json") == 0o600 and (tmp_path / "alerts.json").read_bytes() == b"whole"
    assert not stale.exists()


def test_a_symlink_in_place_of_the_temp_file_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not yours")
    (tmp_path / ".alerts.json.tmp").symlink_to(target)
    with pytest.raises(OSError):
        write_durably(tmp_path / "alerts.json", b"x")
    assert target.read_bytes() == b"not yours"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can write a file owned by another user")
def test_root_replacing_a_service_users_file_keeps_its_owner(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    os.chown(state_dir, NOBODY, NOBODY)
    existing = state_dir / "silences.json"
    existing.write_bytes(b"old")
    os.chown(existing, NOBODY, NOBODY)
    write_durably(existing, b"new")
    write_durably(state_dir / "alerts.json", b"new file")
    for path in (existing, state_dir / "alerts.json"):
        info = os.stat(path)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o600)


def test_a_write_that_fails_leaves_the_old_whole_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "alerts.json"
    write_durably(path, b"old")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_durably(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["alerts.json"]


def test_the_temp_file_is_hidden_beside_the_file(tmp_path):
    assert temp_path(tmp_path / "000000000041-37.jsonl") == tmp_path / ".000000000041-37.jsonl.tmp"
