"""A durable on-disk outbox: a notification put here survives an engine crash or restart until it is done.

One JSON file per notification, named `<sequence>-<random>.json`: written to a temp file, fsynced, renamed
into place and the directory fsynced, so a file either holds a whole notification or does not exist. The
sequence number (one more than the highest on disk) orders `pending()` oldest first, whatever the clock does.
A file that cannot be read back (edited by hand, a full disk) is renamed `*.corrupt`, logged and skipped.
One engine process owns a directory.

While a receiver's notifications are being delivered, the receiver is claimed (`claim`, `release`: in memory, this
process only), so that a second drain never sends them to that receiver at the same time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from pathlib import Path

from tsdb.durable import sync_directory, write_durably

from .model import Notification

log = logging.getLogger(__name__)

_ID = re.compile(r"^(\d{12})-[0-9a-f]{8}$")
SUFFIX = ".json"


class Outbox:
    """Notifications waiting to be delivered, kept in a directory."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._claimed: set[str] = set()
        self._next = max((int(_ID.match(p.stem)[1]) for p in self._files()), default=0) + 1

    def __repr__(self) -> str:
        return f"Outbox({str(self.directory)!r})"

    def _files(self) -> list[Path]:
        """Return the outbox's notification files, oldest first."""
        return sorted((p for p in self.directory.glob("*" + SUFFIX) if _ID.match(p.stem)), key=lambda p: p.stem)

    def put(self, notification: Notification) -> str:
        """Store a notification durably and return its id."""
        body = json.dumps(notification.to_dict(), ensure_ascii=False, sort_keys=True).encode("utf-8")
        with self._lock:
            outbox_id = f"{self._next:012d}-{uuid.uuid4().hex[:8]}"
            self._next += 1
        write_durably(self.directory / f"{outbox_id}{SUFFIX}", body)
        return outbox_id

    def pending(self) -> list[tuple[str, Notification]]:
        """Return every stored notification with its id, oldest first."""
        found = []
        for path in self._files():
            try:
                found.append((path.stem, Notification.from_dict(json.loads(path.read_bytes()))))
            except FileNotFoundError:
                continue  # done() by another thread meanwhile
            except (ValueError, KeyError, TypeError) as err:
                corrupt = path.with_name(path.name + ".corrupt")
                log.error("outbox file %s is unreadable (%s: %s); moved aside to %s",
                          path, type(err).__name__, err, corrupt.name)
                os.replace(path, corrupt)
        return found

    def claim(self, receiver: str) -> bool:
        """Mark a receiver's notifications as out for delivery; return False if they already are."""
        with self._lock:
            if receiver in self._claimed:
                return False
            self._claimed.add(receiver)
            return True

    def release(self, receiver: str) -> None:
        """End a receiver's claim: its delivery is over, whatever came of it."""
        with self._lock:
            self._claimed.discard(receiver)

    def done(self, outbox_id: str) -> None:
        """Forget a notification (delivered, or failed for good); forgetting it twice is fine."""
        if not _ID.match(outbox_id):
            raise ValueError(f"not an outbox id: {outbox_id!r}")
        try:
            (self.directory / f"{outbox_id}{SUFFIX}").unlink()
        except FileNotFoundError:
            return
        sync_directory(self.directory)
