"""What makes a domain point count in domain stability, and what makes it a wedged guest's: the one definition
the agent counts each bulk-stats round by (its `domain_round` point) and the SLI reads by (alerts.sli)."""

from __future__ import annotations

from collections.abc import Mapping

from tsdb.query import Matching, matches

PAUSED = 3  # virDomainState VIR_DOMAIN_PAUSED, libvirt include/libvirt/libvirt-domain.h
PAUSED_STARTING_UP = 11  # virDomainPausedReason VIR_DOMAIN_PAUSED_STARTING_UP: QEMU is starting the guest
_PARTIAL = ("stats_partial", "=", 1)
#: a domain point that is a bad event of domain stability: its stats came back partial (its job held: a wedged
#: guest), unless it is paused starting up (libvirt holds a starting guest's job: the agent's first point of a
#: guest started again comes back partial, seen on real guests in tests/alerts/test_domain_stability_guests.py).
#: A guest that failed counts by its failure event (tsdb.schema.GUEST_FAILURE_KINDS), not by its points after it.
WEDGED_DOMAIN: Matching = (
    (_PARTIAL, ("state_code", "<", PAUSED)), (_PARTIAL, ("state_code", ">", PAUSED)),
    (_PARTIAL, ("state_code", "=", PAUSED), ("state_reason_code", "<", PAUSED_STARTING_UP)),
    (_PARTIAL, ("state_code", "=", PAUSED), ("state_reason_code", ">", PAUSED_STARTING_UP)))
#: the field whose presence makes a domain point an event of domain stability
COUNTED_FIELD = "state_code"
#: the measurement of the agent's count of each bulk-stats round (tsdb.schema), and its fields
DOMAIN_ROUND = "domain_round"
ROUND_POINTS, ROUND_WEDGED = "domain_points", "wedged_points"


def counted(fields: Mapping[str, object]) -> bool:
    """Whether a domain point is an event of domain stability (it has a state)."""
    return fields.get(COUNTED_FIELD) is not None


def wedged(fields: Mapping[str, object]) -> bool:
    """Whether a domain point is a wedged guest's (WEDGED_DOMAIN)."""
    return matches(fields, WEDGED_DOMAIN)


def round_fields(domain_fields: list[Mapping[str, object]]) -> dict[str, int]:
    """Return a `domain_round` point's fields for the fields of the domain points one round wrote."""
    kept = [fields for fields in domain_fields if counted(fields)]
    return {ROUND_POINTS: len(kept), ROUND_WEDGED: sum(1 for fields in kept if wedged(fields))}
