"""What a soak run does: concurrency steps, bounds, the workload mix, deadlines; parsed from text, checked."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: the operations a client picks from, and the libvirt calls each makes (the `call` tag of soak points)
OPERATIONS: dict[str, tuple[str, ...]] = {
    "stats": ("stats",),
    "list": ("list",),
    "define": ("define", "undefine"),
    "lifecycle": ("define", "state", "create", "suspend", "resume", "destroy"),
}
DEFAULT_STEPS = (1, 8, 32, 64)
DEFAULT_MIX = "stats=50,list=20,define=10,lifecycle=20"
DOMAIN_OPERATIONS = ("define", "lifecycle")
MAX_CLIENTS = 4096


@dataclass(frozen=True)
class Mix:
    """Weights of the operations; a client picks each next operation at random by weight."""

    weights: dict[str, int]

    def choose(self, rng: random.Random) -> str:
        """Return the next operation."""
        names = [name for name, weight in self.weights.items() if weight > 0]
        return rng.choices(names, [self.weights[name] for name in names])[0]

    def calls(self) -> tuple[str, ...]:
        """Return the libvirt calls this mix makes (connect first), each once."""
        calls = ["connect"]
        for name, weight in self.weights.items():
            if weight > 0:
                calls += [call for call in OPERATIONS[name] if call not in calls]
        return tuple(calls)

    def needs_domains(self) -> bool:
        """Whether the mix defines test domains (define or lifecycle has a weight)."""
        return any(self.weights.get(name, 0) > 0 for name in DOMAIN_OPERATIONS)


@dataclass(frozen=True)
class SoakPlan:
    """A whole soak: where, how hard, how long, and each call's deadline."""

    uri: str
    steps: tuple[int, ...] = DEFAULT_STEPS
    step_seconds: float = 60.0
    duration_seconds: float | None = None
    max_calls: int | None = None
    mix: Mix = Mix({"stats": 50, "list": 20, "define": 10, "lifecycle": 20})
    call_timeout_seconds: float = 5.0
    keepalive_interval_seconds: int = 5
    keepalive_count: int = 5
    max_guests: int = 16
    record_interval_seconds: float = 10.0

    def planned_seconds(self) -> float:
        """Return how long the soak runs unless --max-calls or a signal ends it first."""
        steps_seconds = len(self.steps) * self.step_seconds
        return steps_seconds if self.duration_seconds is None else min(steps_seconds, self.duration_seconds)


def parse_steps(text: str) -> tuple[int, ...]:
    """Parse "1,8,32" into concurrency steps; raise ValueError saying what is wrong."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise ValueError("expected client counts separated by commas, e.g. 1,8,32,64")
    steps = []
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= MAX_CLIENTS:
            raise ValueError(f"{part!r} is not a client count from 1 to {MAX_CLIENTS}")
        steps.append(int(part))
    return tuple(steps)


def parse_mix(text: str) -> Mix:
    """Parse "stats=50,list=20" into a Mix (operations left out weigh 0); raise ValueError saying what is wrong."""
    weights = dict.fromkeys(OPERATIONS, 0)
    seen = set()
    for part in (part.strip() for part in text.split(",")):
        name, equals, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name:
            raise ValueError(f"{part!r} is not NAME=WEIGHT (operations: {', '.join(OPERATIONS)})")
        if name not in OPERATIONS:
            raise ValueError(f"unknown operation {name!r} (operations: {', '.join(OPERATIONS)})")
        if name in seen:
            raise ValueError(f"operation {name!r} is given twice")
        if not value.isdigit():
            raise ValueError(f"weight {value!r} of {name} is not a whole number >= 0")
        seen.add(name)
        weights[name] = int(value)
    if not any(weights.values()):
        raise ValueError("every weight is 0: nothing to do")
    return Mix(weights)


def parse_positive(text: str, kind: type = float) -> float | int:
    """Parse a positive number (int or float); raise ValueError saying what is wrong."""
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"not a {'whole ' if kind is int else ''}number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("must be a positive, finite number")
    return value
