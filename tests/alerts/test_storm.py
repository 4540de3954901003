"""A storm is a symptom, not a page per host: the gate turns many hosts starting to burn at once into one fleet
page, lets hosts that keep burning page on their own later, and leaves ordinary rounds alone."""

from alerts.storm import StormGate

SLO = "libvirtd-availability"


def observations(burning: set[str], hosts: int = 100, fleet_burns: bool = False) -> list:
    """One SLO's observations as slo_observations makes them: page and ticket per host, and for the fleet."""
    found = []
    for number in range(hosts):
        host = f"hv-{number:04d}"
        for tier in ("page", "ticket"):
            labels = {"alertname": "ErrorBudgetBurn", "slo": SLO, "host": host, "severity": tier}
            found.append((labels, {"summary": f"{host} {tier}", "description": ""}, host in burning and tier == "page",
                          0.0))
    for tier in ("page", "ticket"):
        labels = {"alertname": "ErrorBudgetBurn", "slo": SLO, "scope": "fleet", "severity": tier}
        found.append((labels, {"summary": "fleet", "description": "fleet burn"}, fleet_burns and tier == "page", 0.0))
    return found


def active(found: list) -> set[tuple[str, str]]:
    return {(labels.get("host", "fleet"), labels["severity"]) for labels, _, on, _ in found if on}


def hosts(numbers) -> set[str]:
    return {f"hv-{n:04d}" for n in numbers}


def test_a_few_hosts_burning_page_each_as_before():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    found = gate.apply(SLO, observations(hosts(range(5))), alerting=set(), now=0.0)
    assert active(found) == {(host, "page") for host in hosts(range(5))}
    assert gate.held(SLO) == {}


def test_a_fifth_of_the_fleet_starting_at_once_is_one_fleet_page_naming_the_count_and_a_sample():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    found = gate.apply(SLO, observations(hosts(range(20))), alerting=set(), now=0.0)
    assert active(found) == {("fleet", "page")}
    [fleet] = [annotations for labels, annotations, on, _ in found if on]
    assert fleet["summary"].startswith(f"{SLO}: 20 of 100 hosts burn their error budget together")
    assert "hv-0000, hv-0001, hv-0002, hv-0003, hv-0004 and 15 more" in fleet["summary"]
    assert "fleet burn" in fleet["description"]


def test_storm_hosts_that_stop_burning_leave_quietly_and_the_fleet_page_ends():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    gate.apply(SLO, observations(hosts(range(20))), alerting=set(), now=0.0)
    during = gate.apply(SLO, observations(hosts(range(20))), alerting=set(), now=30.0)
    assert active(during) == {("fleet", "page")}
    after = gate.apply(SLO, observations(set()), alerting=set(), now=60.0)
    assert active(after) == set() and gate.held(SLO) == {}


def test_storm_hosts_still_burning_after_the_hold_page_on_their_own():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    gate.apply(SLO, observations(hosts(range(20))), alerting=set(), now=0.0)
    gate.apply(SLO, observations(hosts(range(3))), alerting=set(), now=600.0)  # 17 recovered
    found = gate.apply(SLO, observations(hosts(range(3))), alerting=set(), now=900.0)
    assert active(found) == {(host, "page") for host in hosts(range(3))}
    assert gate.held(SLO) == {}


def test_hosts_already_paging_do_not_count_as_starting():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    already = hosts(range(15))
    found = gate.apply(SLO, observations(already | hosts(range(15, 20))), alerting={(host, "page") for host in already}, now=0.0)
    assert active(found) == {(host, "page") for host in already | hosts(range(15, 20))}  # only 5 start: no storm


def test_fewer_than_min_hosts_is_no_storm_even_in_a_small_fleet():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    found = gate.apply(SLO, observations(hosts(range(9)), hosts=20), alerting=set(), now=0.0)
    assert len(active(found)) == 9


def test_a_host_joining_a_running_storm_is_held_with_it_only_when_it_is_a_storm_of_its_own():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    gate.apply(SLO, observations(hosts(range(20))), alerting=set(), now=0.0)
    found = gate.apply(SLO, observations(hosts(range(21))), alerting=set(), now=30.0)  # one more starts alone
    assert active(found) == {("fleet", "page"), ("hv-0020", "page")}


def test_slos_are_gated_separately():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0)
    gate.apply(SLO, observations(hosts(range(20))), alerting=set(), now=0.0)
    assert gate.held("another-slo") == {} and len(gate.held(SLO)) == 20


def test_hosts_starting_over_two_rounds_are_one_storm_when_together_they_are_one():
    # the outage reaches 5 hosts in one round (no storm alone) and 15 more in the next: they wait, then are held
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=30)
    first = gate.apply(SLO, observations(hosts(range(5))), alerting=set(), now=0.0)
    assert active(first) == set()  # waiting, as Alertmanager's group_wait
    second = gate.apply(SLO, observations(hosts(range(20))), alerting=set(), now=30.0)
    assert active(second) == {("fleet", "page")} and len(gate.held(SLO)) == 20


def test_a_host_burning_alone_pages_once_it_has_waited():
    gate = StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=30)
    assert active(gate.apply(SLO, observations(hosts([7])), alerting=set(), now=0.0)) == set()
    assert active(gate.apply(SLO, observations(hosts([7])), alerting=set(), now=15.0)) == set()
    assert active(gate.apply(SLO, observations(hosts([7])), alerting=set(), now=30.0)) == {("hv-0007", "page")}


# ---- agents that go silent together ----

SILENT = "AgentSilent"


def silent_observations(silent: set[str]) -> list:
    """AgentSilent observations as the rules' memory gives them: only the hosts it evaluated (the silent ones), and
    the engine's fleet observation."""
    found = [({"alertname": SILENT, "severity": "page", "host": host},
              {"summary": f"{host} silent", "description": ""}, True, 0.0) for host in sorted(silent)]
    found.append(({"alertname": SILENT, "scope": "fleet", "severity": "page"},
                  {"summary": "agents write", "description": "the store may be unreachable from the hosts"}, False, 0.0))
    return found


def test_agents_going_silent_together_are_one_fleet_page_counted_against_the_whole_fleet():
    from alerts.storm import silent_agents_gate

    gate = silent_agents_gate(StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=30))
    found = gate.apply(SILENT, silent_observations(hosts(range(40))), set(), 0.0, fleet_hosts=200)
    assert active(found) == {("fleet", "page")}
    [fleet] = [annotations for labels, annotations, on, _ in found if on]
    assert fleet["summary"].startswith(f"{SILENT}: 40 of 200 hosts have agents that went silent together, a "
                                       "fleet-wide cause: hv-0000, hv-0001")
    assert "held as long as it lasts" in fleet["description"] and "the store may be unreachable" in fleet["description"]


def test_silent_agents_of_a_storm_stay_held_past_the_hold_and_leave_quietly_when_they_write_again():
    from alerts.storm import silent_agents_gate

    gate = silent_agents_gate(StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=0))
    for now in (0.0, 600.0, 3600.0):  # an hour of partition: still the one fleet page
        assert active(gate.apply(SILENT, silent_observations(hosts(range(40))), set(), now,
                                 fleet_hosts=200)) == {("fleet", "page")}
    back = gate.apply(SILENT, silent_observations(set()), set(), 3630.0, fleet_hosts=200)
    assert active(back) == set() and gate.held(SILENT) == {}


def test_a_few_silent_agents_among_many_hosts_page_each_after_the_wait():
    from alerts.storm import silent_agents_gate

    gate = silent_agents_gate(StormGate(share=0.1, min_hosts=10, hold_seconds=900, wait_seconds=30))
    assert active(gate.apply(SILENT, silent_observations(hosts(range(12))), set(), 0.0, fleet_hosts=200)) == set()
    found = gate.apply(SILENT, silent_observations(hosts(range(12))), set(), 30.0, fleet_hosts=200)
    assert active(found) == {(host, "page") for host in hosts(range(12))}
