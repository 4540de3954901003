"""Benchmark of the shell's callbacks: the firing badge of the navigation and the range sync, server time.

Run it from the repository root:

    .venv/bin/python benchmarks/bench_shell.py [--alerts 1000] [--runs 20]

It leaves `--alerts` tracked alerts (nine in ten firing, one in ten pending) in an alert engine's state file,
creates the app over an empty DuckDB store with that state dir, and posts each callback to
/_dash-update-component through Flask's test client (as a browser does, JSON included), median of `--runs`
after one warm-up: the badge when the state file is unchanged since the last read (one stat), the badge right
after the engine rewrote the file (read again), and the range sync for a URL with a custom range and for an
Apply of the date picker. Target: every callback under 300 ms (as bench_dashboard.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from table import print_table  # noqa: E402

TARGET_MS = 300.0
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
BADGE = {"output": "..shell-firing.children...shell-firing.className...shell-firing.title..",
         "outputs": [{"id": "shell-firing", "property": p} for p in ("children", "className", "title")],
         "inputs": [{"id": "url", "property": "pathname", "value": "/"},
                    {"id": "shell-refresh", "property": "n_intervals", "value": 3}],
         "changedPropIds": ["shell-refresh.n_intervals"]}
SYNC_OUTPUTS = [("url", "search"), ("shell-range-picker", "value"), ("shell-dates", "start_date"),
                ("shell-start-time", "value"), ("shell-dates", "end_date"), ("shell-end-time", "value"),
                ("shell-refresh-picker", "value"), ("shell-range", "data"), ("shell-custom", "style"),
                ("shell-refresh", "disabled"), ("shell-refresh", "interval"), ("shell-range-message", "children")]


def sync_body(search: str, changed: str) -> dict:
    """Return the body of the range sync callback after `changed` changed."""
    return {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in SYNC_OUTPUTS) + "..",
        "outputs": [{"id": i, "property": p} for i, p in SYNC_OUTPUTS],
        "inputs": [{"id": "url", "property": "search", "value": search},
                   {"id": "shell-range-picker", "property": "value", "value": "custom"},
                   {"id": "shell-apply", "property": "n_clicks", "value": 1},
                   {"id": "shell-start-time", "property": "n_submit", "value": 0},
                   {"id": "shell-end-time", "property": "n_submit", "value": 0},
                   {"id": "shell-refresh-picker", "property": "value", "value": "off"}],
        "state": [{"id": "shell-dates", "property": "start_date", "value": "2026-02-27"},
                  {"id": "shell-dates", "property": "end_date", "value": "2026-03-01"},
                  {"id": "shell-start-time", "property": "value", "value": "08:00"},
                  {"id": "shell-end-time", "property": "value", "value": "11:30"},
                  {"id": "shell-range", "property": "data", "value": None}],
        "changedPropIds": [changed],
    }


def leave_alerts(state_dir: Path, count: int, round_: int) -> None:
    """Leave `count` tracked alerts (nine in ten firing) in the state file; `round_` changes their annotations."""
    from alerts.paths import alert_state_path
    from alerts.state import AlertTracker

    tracker = AlertTracker(alert_state_path(state_dir), lambda: NOW)
    tracker.observe_all([({"alertname": "ErrorBudgetBurn", "slo": f"slo-{i % 4}", "host": f"hv-{i:04d}",
                           "severity": "page"}, {"summary": f"burns {round_}x"}, True, 0.0 if i % 10 else 600.0)
                         for i in range(count)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    from dashboard.app import create_app
    from dashboard.context import DashboardContext
    from tsdb import open_store

    with tempfile.TemporaryDirectory() as work:
        state_dir = Path(work) / "alerts"
        leave_alerts(state_dir, args.alerts, 0)
        store = open_store(f"duckdb://{work}/store.duckdb")
        app = create_app(DashboardContext(store, [], state_dir, clock=lambda: NOW))
        client = app.server.test_client()
        client.get("/_dash-layout")

        def post(body) -> dict:
            answer = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json",
                                 headers={"Origin": "http://localhost"})
            if answer.status_code != 200:
                raise SystemExit(f"{answer.status_code}: {answer.get_data(as_text=True)[:400]}")
            return answer.get_json()

        def timed(call, before=lambda run: None) -> tuple[float, dict]:
            times, result = [], {}
            for run in range(args.runs + 1):
                before(run)
                began = time.perf_counter()
                result = call()
                if run:
                    times.append((time.perf_counter() - began) * 1000)
            return statistics.median(times), result

        rows = []
        unchanged, shown = timed(lambda: post(BADGE))
        count = shown["response"]["shell-firing"]["children"]
        rows.append((f"badge, state unchanged ({args.alerts} alerts, {count} firing)", f"{unchanged:.1f}", "ms"))
        changed, _ = timed(lambda: post(BADGE), before=lambda run: leave_alerts(state_dir, args.alerts, run + 1))
        rows.append((f"badge, state rewritten by the engine ({args.alerts} alerts)", f"{changed:.1f}", "ms"))
        url, _ = timed(lambda: post(sync_body("?range=custom&start=2026-02-27T08:00&end=2026-03-01T11:30",
                                              "url.search")))
        rows.append(("range sync, a custom range from the URL", f"{url:.1f}", "ms"))
        apply, _ = timed(lambda: post(sync_body("", "shell-apply.n_clicks")))
        rows.append(("range sync, Apply of the date picker", f"{apply:.1f}", "ms"))
        store.close()
    print_table([(*row, f"< {TARGET_MS:.0f} ms" + ("" if float(row[1]) < TARGET_MS else "  MISSED")) for row in rows])


if __name__ == "__main__":
    main()
