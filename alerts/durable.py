"""Moved to tsdb.durable (issue 18); this stays only until alerts/notify/outbox.py and virtwatch/demo.py import
from there, then it is deleted."""

from tsdb.durable import PRIVATE_FILE_MODE, sync_directory, write_durably  # noqa: F401
