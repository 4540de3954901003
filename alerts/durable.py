"""Durable file writes for the alert engine's state: a file is either the old whole or the new whole, even after
a power cut (temp file, fsync, rename, directory fsync). The one place that knows how.

Every file written here is private: mode 0600 whatever the umask (the state names hosts and silences, the outbox
holds notifications with their receivers' payloads), under systemd or not. When root writes (an operator's
`virtwatch silence` on the engine's host), the file keeps the owner of the file it replaces, or takes its
directory's owner when it is new, so the service user that owns the state can still read it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the mode of every file written here: read and written by its owner only
PRIVATE_FILE_MODE = 0o600


def sync_directory(directory: str | os.PathLike) -> None:
    """fsync a directory, so that a rename or unlink in it survives a power cut."""
    fd = os.open(directory, os.O_RDONLY)
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
    """Replace `path` with `body` atomically and durably, as a private file (0600); raise OSError when it cannot."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    owner = _owner_to_keep(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    with open(fd, "wb") as handle:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # a temp file left by a crash keeps its old mode through O_CREAT
        if owner is not None:
            os.fchown(fd, *owner)
        handle.write(body)
        handle.flush()
        os.fsync(fd)
    os.replace(temp, path)
    sync_directory(path.parent)
