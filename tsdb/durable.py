"""Durable file writes: a file is either the old whole or the new whole, even after a power cut (temp file,
fsync, rename, directory fsync). The one place that knows how; the alert engine's state, silences and outbox
and the agent's spool segments are written here.

Every file written here is private: mode 0600 whatever the umask (the engine's state names hosts and silences,
its outbox holds notifications with their receivers' payloads, a spool segment holds a host's and its guests'
points), under systemd or not. When root writes (an operator's `virtwatch silence` on the engine's host), the
file keeps the owner of the file it replaces, or takes its directory's owner when it is new, so the service user
that owns the directory can still read it.

The temp file is `.<name>.tmp` beside the file; a write that fails removes it, and one a crash left behind is
truncated and replaced by the next write of the same file (or removed by its owner on opening, as the spool does).
"""

from __future__ import annotations

import os
from pathlib import Path

#: the mode of every file written here: read and written by its owner only
PRIVATE_FILE_MODE = 0o600
#: the suffix of a temp file, after a leading dot and the file's name
TEMP_SUFFIX = ".tmp"


def temp_path(path: str | os.PathLike) -> Path:
    """Return the hidden temp file a write of `path` goes through: `.<name>.tmp` in the same directory."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


def sync_directory(directory: str | os.PathLike) -> None:
    """fsync a directory, so that a rename or unlink in it survives a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _owner_to_keep(path: Path) -> tuple[int, int] | None:
    """Return (uid, gid) the new file should have when root writes it: the replaced file's, else the directory's."""
    if os.geteuid() != 0:
        return None  # only root can give a file away; anyone else's files are their own
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        info = os.stat(path.parent)
    return info.st_uid, info.st_gid


def write_durably(path: str | os.PathLike, body: bytes) -> None:
    """Replace `path` with `body` atomically and durably, as a private file (0600); raise OSError when it cannot.

    When this returns, the new file is on disk under its name; when it raises, `path` is the old whole (or
    absent) and no temp file is left, except that a failed directory fsync leaves the renamed file in place.
    """
    path = Path(path)
    temp = temp_path(path)
    owner = _owner_to_keep(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)  # a temp file left by a crash keeps its old mode through O_CREAT
            if owner is not None:
                os.fchown(fd, *owner)
            view = memoryview(body)
            while view:  # a write may take only part of what it is given
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    sync_directory(path.parent)
