"""A storm is a symptom, not a thousand pages: many hosts that start burning an SLO in the same round.

A host that starts burning one SLO's budget (its page tier active, no alert of its own firing yet) WAITS
`wait_seconds` before its page is let through, as Alertmanager's group_wait: an outage rarely reaches every host
in the same round. When the hosts waiting are more than `share` of the fleet's hosts (and at least `min_hosts`),
the cause is fleet-wide: a store hiccup, a network partition, a bad rollout. The gate then holds them: their
per-host page and ticket observations are made inactive, and the SLO's fleet-scope page is active instead,
naming how many hosts and a sample of them (Alertmanager's grouping, done before the notification rather than
after). A held host that stops burning leaves quietly; one that still burns `hold_seconds` after the storm
began is released and pages on its own. The fleet page resolves once no host is held and the fleet itself no
longer burns.

Agents that go silent together are a storm too (a partition between the hosts and the store, the store's ingest,
a bad agent rollout): `silent_agents_gate` makes the gate that holds AgentSilent pages the same way, with the
words of that symptom (`StormWords`), counting the hosts whose agents the engine knows, and holding them for as long
as they stay silent (no release after `hold_seconds`: a partition of an hour is one page, not one per host after
15 minutes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Observation = tuple[dict[str, str], dict[str, str], bool, float]
SAMPLE_HOSTS = 5


@dataclass(frozen=True)
class StormWords:
    """How a storm's fleet page says what the hosts have in common."""

    together: str  # "{n} of {hosts} hosts{scope} <together>, a fleet-wide cause"
    started: str   # "{n} hosts <started> in the same round"
    still: str     # "pages follow only for hosts <still> then"
    own: str       # the fleet observation's description is quoted under this heading

    def summary(self, labels: dict[str, str], held: int, hosts: int, scope: str, sample: str) -> str:
        """The fleet page's summary."""
        what = labels.get("slo") or labels.get("alertname", "")
        return f"{what}: {held} of {hosts} hosts{scope} {self.together}, a fleet-wide cause: {sample}"


SLO_WORDS = StormWords("burn their error budget together", "started burning", "still burning",
                       "the fleet's own burn")
SILENT_WORDS = StormWords("have agents that went silent together", "had their agents go silent", "still silent",
                          "what the silence means")


@dataclass
class StormGate:
    """Holds the hosts of a storm per SLO (host -> when it was held) and rewrites each round's observations."""

    share: float = 0.1
    min_hosts: int = 10
    hold_seconds: float = 900.0
    wait_seconds: float = 30.0
    words: StormWords = SLO_WORDS
    _held: dict[str, dict[str, float]] = field(default_factory=dict)
    _waiting: dict[str, dict[str, float]] = field(default_factory=dict)

    def held(self, slo: str) -> dict[str, float]:
        """The hosts of `slo` held now, with when each was held (the clock of `apply`)."""
        return dict(self._held.get(slo, {}))

    def apply(self, slo: str, observations: Sequence[Observation], alerting: set[tuple[str, str]], now: float,
              fleet_hosts: int | None = None) -> list[Observation]:
        """Return one SLO's observations with waiting and held per-host observations made inactive and a storm's
        fleet page active; `alerting` are the (host, severity) alerts of this SLO that already fire; `fleet_hosts`
        counts the fleet when the observations do not name every host (default: the hosts they name)."""
        active = {(labels["host"], labels.get("severity", "page")) for labels, _, on, _ in observations
                  if on and "host" in labels}
        burning = {host for host, severity in active if severity == "page"}
        named = {labels["host"] for labels, *_ in observations if "host" in labels}
        hosts = named if fleet_hosts is None else range(max(fleet_hosts, len(named)))
        held = {host: since for host, since in self._held.get(slo, {}).items() if host in burning}
        # each new alert waits; a ticket too, since its page may follow in the next round and then inhibits it
        starting = {(host, severity) for host, severity in active - alerting if host not in held}
        waiting = {key: since for key, since in self._waiting.get(slo, {}).items() if key in starting}
        waiting.update({key: now for key in starting - set(waiting)})
        storm = {host for host, severity in waiting if severity == "page"}
        if len(storm) >= self.min_hosts and len(storm) > self.share * len(hosts):
            after = ("none while the storm lasts" if self.hold_seconds == float("inf")
                     else f"for those {self.words.still} after {self.hold_seconds:g} s")
            log.warning("%s: %d of %d hosts %s within %g s: one fleet page instead of %d (a fleet-wide cause); "
                        "per-host pages %s", slo, len(storm), len(hosts), self.words.started, self.wait_seconds,
                        len(storm), after)
            held.update({host: now for host in storm})
            waiting = {key: since for key, since in waiting.items() if key[0] not in storm}
        waiting = {key: since for key, since in waiting.items() if now - since < self.wait_seconds}
        if waiting:
            self._waiting[slo] = waiting
        else:
            self._waiting.pop(slo, None)
        released = {host for host, since in held.items() if now - since >= self.hold_seconds}
        for host in sorted(released):
            log.warning("%s: %s still burns %g s after the storm began: it pages on its own", slo, host,
                        self.hold_seconds)
            del held[host]
        if held:
            self._held[slo] = held
        else:
            self._held.pop(slo, None)
        return [self._rewritten(observation, held, waiting, len(hosts)) for observation in observations]

    def _rewritten(self, observation: Observation, held: dict[str, float], waiting: dict[tuple[str, str], float],
                   hosts: int) -> Observation:
        labels, annotations, active, for_seconds = observation
        if labels.get("host") in held or (labels.get("host"), labels.get("severity", "page")) in waiting:
            return labels, annotations, False, for_seconds
        if held and labels.get("scope") in ("fleet", "shard") and labels.get("severity") == "page":
            names = sorted(held)
            sample = ", ".join(names[:SAMPLE_HOSTS]) + (f" and {len(names) - SAMPLE_HOSTS} more"
                                                       if len(names) > SAMPLE_HOSTS else "")
            scope = f" of shard {labels['shard']}" if labels.get("scope") == "shard" else ""
            summary = self.words.summary(labels, len(held), hosts, scope, sample)
            hold = "as long as it lasts" if self.hold_seconds == float("inf") else f"for {self.hold_seconds:g} s"
            description = (f"{len(held)} hosts {self.words.started} in the same round; their own pages are held "
                           f"{hold} and follow only for hosts {self.words.still} then.\n"
                           f"hosts: {', '.join(names)}\n\n{self.words.own}:\n{annotations.get('description', '')}")
            return labels, {**annotations, "summary": summary, "description": description}, True, for_seconds
        return observation


def silent_agents_gate(gate: StormGate) -> StormGate:
    """Return the gate of silent agents: `gate`'s share, minimum and wait, held while they stay silent."""
    return StormGate(share=gate.share, min_hosts=gate.min_hosts, hold_seconds=float("inf"),
                     wait_seconds=gate.wait_seconds, words=SILENT_WORDS)
