"""Durable file writes for the alert engine's state: a file is either the old whole or the new whole, even after
a power cut (temp file, fsync, rename, directory fsync). The one place that knows how."""

from __future__ import annotations

import os
from pathlib import Path


def sync_directory(directory: str | os.PathLike) -> None:
    """fsync a directory, so that a rename or unlink in it survives a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str | os.PathLike, body: bytes) -> None:
    """Replace `path` with `body` atomically and durably; raise OSError when it cannot."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    sync_directory(path.parent)
