"""Fixtures for the notifier tests: `notify_conformance` importable (the receivers are in tests/alerts/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # `notify_conformance` importable
