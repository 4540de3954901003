"""Debian's Chromium driven by Playwright for the tests that look at the dashboard (no `playwright install`).

One session-wide browser (`chromium` fixture, in tests/conftest.py) serves every test: Playwright's sync API
runs one event loop per thread, so two sync_playwright() sessions cannot be open in one test process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
#: flags from shared/notes/browser-testing.md: no outside lookups, no background traffic
CHROMIUM_ARGS = ["--headless=new", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]
SHOTS_DIR = Path("/tmp/virtwatch-shots")


@dataclass
class Tab:
    """A browser page and every console error and uncaught exception it saw."""

    page: object
    errors: list[str]

    def shot(self, name: str) -> Path:
        """Save a full-page screenshot under SHOTS_DIR and return its path."""
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        path = SHOTS_DIR / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
