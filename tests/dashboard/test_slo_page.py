"""The SLO page in Chromium over a planted store and the alert engine's state: it says "firing" whenever an alert
of the SLO fires (as the alerts page lists them), ranks hosts by how fast they burn, and says how much data the
budget's period holds."""

from __future__ import annotations

import datetime as dt

import pytest
from planted import HISTORY_MINUTES, HOST_STATES
from grid_text import grid_rows
from planted_triage import SPENT_HOST, start_triage_server
from test_dashboard_pages import SETTLED_MS, open_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def triage_server(tmp_path_factory):
    """`virtwatch dashboard` over the planted fleet and the engine's alert state of one round over it."""
    server = start_triage_server(tmp_path_factory.mktemp("dashboard-triage-slos"))
    yield server
    server.stop()


def firing_alerts_on_the_alerts_page(tab, server) -> dict[str, dict[str, set[str]]]:
    """Return {slo: {severity: hosts}} of the alerts page's firing alerts ("the fleet" for a fleet-wide one)."""
    open_page(tab, f"{server.url}/alerts?{server.planted_range()}")
    found: dict[str, dict[str, set[str]]] = {}
    for row in grid_rows(tab.page, "#alerts-active-grid"):
        name, _, slo = row["alert"].partition("\n")
        if slo and row["state_label"].startswith("✖ firing"):
            found.setdefault(slo, {}).setdefault(row["severity"], set()).add(row["host"])
    return found


def firing_on_the_slo_page(tab, server) -> dict[str, dict[str, set[str]]]:
    """Return {slo: {severity: hosts}} as the SLO page's cards name them, and {slo: firing chip shown}."""
    open_page(tab, f"{server.url}/slos?{server.planted_range()}")
    cards = tab.page.evaluate("""() => Array.from(document.querySelectorAll('.slo-card')).map(card => ({
        slo: card.dataset.slo, firing: card.querySelector('.slo-firing').dataset.firing,
        chip: card.querySelector('.slo-firing .chip').innerText,
        lines: Array.from(card.querySelectorAll('.slo-firing-line')).map(line => line.innerText)}))""")
    found: dict[str, dict[str, set[str]]] = {}
    for card in cards:
        assert (card["firing"], card["chip"]) == (("yes", "✖ firing") if card["lines"] else ("no", "✔ no alert fires"))
        for line in card["lines"]:
            words, _, hosts = line.partition(" firing: ")
            count, severity = words.split(" ")
            assert int(count) == len(hosts.split(", "))
            found.setdefault(card["slo"], {})[severity.rstrip("s")] = set(hosts.split(", "))
    return found


def test_every_slo_whose_alert_fires_says_firing_and_names_the_hosts_the_alerts_page_lists(triage_server, tab):
    on_alerts_page = firing_alerts_on_the_alerts_page(tab, triage_server)
    on_slo_page = firing_on_the_slo_page(tab, triage_server)
    tab.shot("triage-slos")
    assert on_slo_page == on_alerts_page
    # the hung and the down host burn the availability budget at hundreds of times its rate: both pages fire
    broken = {host for host, state in HOST_STATES.items() if state in ("hung", "down")}
    assert broken | {"the fleet"} <= on_slo_page["libvirtd-availability"]["page"]
    assert SPENT_HOST not in on_slo_page["libvirtd-availability"]["page"]
    assert tab.errors == []


def test_the_hosts_burning_the_most_are_ordered_by_the_burn_over_the_fastest_window(triage_server, tab):
    open_page(tab, f"{triage_server.url}/slos?{triage_server.planted_range()}")
    title = tab.page.locator("#slos-card-0 h3", has_text="Hosts burning the most").inner_text()
    assert "by the burn over 1h, the fastest alert window" in title
    rows = grid_rows(tab.page, "#slos-hosts-0")
    burns = [float(row["burn_0"].rstrip("x")) for row in rows]
    assert burns == sorted(burns, reverse=True)
    hosts = [row["host_link"] for row in rows]
    # hung for the last 30 minutes (500x over 1h), then down for the last 20 (333x), before the host that spent
    # the most budget (down for 56 minutes until 65 minutes ago) but burns nothing now
    assert hosts[:2] == ["kvm-hung-02", "kvm-down-03"]
    budgets = {row["host_link"]: float(row["budget"].lstrip("✖▲ ").rstrip("%").replace(",", "")) for row in rows}
    assert budgets[SPENT_HOST] == min(budgets.values())
    assert float(rows[hosts.index(SPENT_HOST)]["burn_0"].rstrip("x")) == 0.0
    assert tab.errors == []


def test_the_budget_says_how_much_of_its_period_the_data_covers(triage_server, tab):
    open_page(tab, f"{triage_server.url}/slos?{triage_server.planted_range()}")
    tab.page.wait_for_selector("#slos-coverage-0", timeout=SETTLED_MS)
    coverage = tab.page.inner_text("#slos-coverage-0")
    # the planted history is two hours long; the first hour rollup is of the hour it began in
    first = (triage_server.now - dt.timedelta(minutes=HISTORY_MINUTES)).replace(minute=0)
    assert coverage == f"30d SLO, 2 hours of data (since {first:%Y-%m-%d %H:%M} UTC)"
