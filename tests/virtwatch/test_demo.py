"""`virtwatch demo` started as the README says: from an empty data directory it serves a dashboard whose fleet page
(read in Debian's Chromium) lists the simulated hosts and the live test-driver host; Ctrl-C stops it cleanly; a
second start reuses the data. The fleet is served with every simulated host before the history has finished
loading (a banner shows its progress), or else the history is complete when the dashboard first answers: an
order, not a time. The deadlines below only bound a broken run."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from servers import free_port
from tsdb import open_store

pytestmark = pytest.mark.slow
VIRTWATCH = str(Path(sys.executable).with_name("virtwatch"))
GIVE_UP_SECONDS = 180


class Demo:
    """A `virtwatch demo` subprocess with its output in files."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        self.out, self.err = data_dir.parent / f"demo-{port}.out", data_dir.parent / f"demo-{port}.err"
        self.process = subprocess.Popen(
            [VIRTWATCH, "demo", "--data-dir", str(data_dir), "--port", str(port), *extra],
            stdout=open(self.out, "wb"), stderr=open(self.err, "wb"))
        self.url = f"http://127.0.0.1:{port}/"

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            if f"open {self.url}" in self.out.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                pytest.fail(f"the demo exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.2)
        pytest.fail(f"the demo never said it was ready:\n{self.output()}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


def fleet_page_text(chromium, url: str, expect: list[str], screenshot: Path) -> tuple[str, list[str]]:
    """Open the fleet page, wait until every expected text shows; return the page's text and console errors."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(url)
    for text in expect:
        page.get_by_text(text, exact=False).first.wait_for(timeout=GIVE_UP_SECONDS * 1000)
    page.screenshot(path=str(screenshot), full_page=True)
    body = page.inner_text("body")
    page.close()
    return body, errors


def history(url: str) -> dict:
    """The demo's own word on its history: {"complete": bool, "message": str}."""
    with urllib.request.urlopen(url + "_demo/history", timeout=30) as response:
        return json.loads(response.read())


def served_before_or_complete(demo: Demo, chromium, hosts: int, screenshot: Path) -> tuple[dict, dict, str]:
    """Wait until the demo answers; return its history's state then, and once the fleet page counts every
    simulated host (the grid draws only the rows in view), and the page's text then."""
    demo.wait_ready()
    at_first_answer = history(demo.url)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(demo.url)
    every_host = re.compile(rf"\b{hosts} of {hosts} hosts|\b{hosts + 1} of {hosts + 1} hosts")  # + the live agent
    page.locator("#fleet-count").filter(has_text=every_host).wait_for(timeout=GIVE_UP_SECONDS * 1000)
    at_fleet = history(demo.url)
    body = page.inner_text("body")
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    assert errors == []
    return at_first_answer, at_fleet, body


def test_the_fleet_is_served_with_every_host_before_the_history_finishes_or_the_history_is_complete_first(
        tmp_path, chromium):
    demo = Demo(tmp_path / "data", free_port())  # the README's demo: 24 hosts over 14 days
    try:
        at_first_answer, at_fleet, body = served_before_or_complete(demo, chromium, 24, tmp_path / "fleet.png")
        if not at_fleet["complete"]:  # every host shown while the history loads, and the banner says so
            assert "the fleet shows the newest hour" in body
        else:
            assert at_first_answer["complete"] or at_fleet["complete"]
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while not history(demo.url)["complete"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert history(demo.url)["complete"]
    finally:
        status = demo.interrupt()
    assert status == 0, demo.output()
    output = demo.output()
    assert "Traceback" not in output
    # the order, from the demo's own lines: the dashboard's address before the history was complete
    assert output.index("the newest hour written") < output.index("the history is complete")
    assert "hv-01" in body


def test_a_first_start_serves_the_simulated_fleet_and_a_second_start_reuses_the_data(tmp_path, chromium):
    data_dir = tmp_path / "demo data"
    first = Demo(data_dir, free_port(), "--hosts", "3", "--days", "0.5")
    try:
        first.wait_ready()
        body, errors = fleet_page_text(chromium, first.url, ["hv-01", "hv-03", "(test driver)"],
                                       tmp_path / "first.png")
    finally:
        status = first.interrupt()
    assert status == 0, first.output()
    assert errors == []
    assert "first start" in first.output() and "points written" in first.output()
    assert "hv-02" in body and "Traceback" not in first.output()
    with open_store(f"duckdb://{data_dir / 'demo.duckdb'}") as store:
        hosts_after_first = set(store.tag_values("host", "host"))
        rollups = len(store.query("sli", ["valid_total"], 0, time.time_ns(), where={"resolution": "1h"}))
    assert {"hv-01", "hv-02", "hv-03"} <= hosts_after_first and rollups > 0

    second = Demo(data_dir, free_port())
    try:
        second.wait_ready()
        body, errors = fleet_page_text(chromium, second.url, ["hv-01", "hv-03"], tmp_path / "second.png")
    finally:
        status = second.interrupt()
    assert status == 0, second.output()
    assert "reusing" in second.output() and "first start" not in second.output()
    assert errors == [] and "hv-02" in body


@pytest.mark.parametrize("arguments, message", [
    (["--port", "0"], "--port 0: out of range"),
    (["--days", "0"], "--days 0: must be more than 0"),
    (["--hosts", "0"], "--hosts 0: out of range"),
], ids=["port zero", "no days", "no hosts"])
def test_bad_arguments_exit_2_with_one_line_naming_the_argument(tmp_path, arguments, message):
    result = subprocess.run([VIRTWATCH, "demo", "--data-dir", str(tmp_path), *arguments], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_refused_before_any_work(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([VIRTWATCH, "demo", "--data-dir", str(tmp_path / "d"), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"--port {port}: cannot listen" in result.stderr
    assert not (tmp_path / "d" / "demo.duckdb").exists()
