"""The receiver types by name, and reading `[[alerts.receivers]]` with them.

A table's `type` picks its `ReceiverType` here, which says which keys it takes and needs and builds its
notifier; no other module lists the types. A new receiver is a module with a notifier and a RECEIVER_TYPE,
added to RECEIVER_TYPES.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tsdb.config_keys import literal, read_table, redacted, type_name

from . import alertmanager, pagerduty, slack, webhook
from .config import ReceiverConfig, ReceiverType, receiver_env_var

if TYPE_CHECKING:
    from . import Notifier

#: every receiver type, in the order messages list them
RECEIVER_TYPES: dict[str, ReceiverType] = {t.name: t for t in (
    webhook.RECEIVER_TYPE, alertmanager.RECEIVER_TYPE, pagerduty.RECEIVER_TYPE, slack.RECEIVER_TYPE)}
#: the keys only some types take, and the environment may supply (with url, which every type takes)
_OWN_KEYS = tuple(dict.fromkeys(k for t in RECEIVER_TYPES.values() for k in t.takes))


def notifier_for(receiver: ReceiverConfig, external_url: str = "") -> Notifier:
    """Build the notifier for one configured receiver; external_url (the dashboard) goes where a type has room."""
    receiver_type = RECEIVER_TYPES.get(receiver.type)
    if receiver_type is None:
        raise ValueError(f"receiver {receiver.name!r}: unknown type {receiver.type!r}; "
                         f"known types: {', '.join(RECEIVER_TYPES)}")
    return receiver_type.build(receiver, external_url)


def read_receivers(raw: Any, problems: list[str], environ: Mapping[str, str],
                   base_dir: Path | None = None) -> tuple[ReceiverConfig, ...]:
    """Check [[alerts.receivers]]: each table, then the names across them; append a problem for each bad key."""
    if not isinstance(raw, list):
        problems.append(f"alerts.receivers = {literal(raw)}: expected an array of tables "
                        f"([[alerts.receivers]]), got {type_name(raw)}")
        return ()
    receivers: list[ReceiverConfig] = []
    by_name: dict[str, str] = {}
    by_env: dict[str, tuple[str, str]] = {}
    for index, item in enumerate(raw):
        where = f"alerts.receivers[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} = {literal(item)}: expected a table, got {type_name(item)}")
            continue
        before = len(problems)
        receiver = read_receiver(item, where, problems, environ, base_dir)
        name = item.get("name")
        if isinstance(name, str) and name.strip():
            env_stem = receiver_env_var(name, "*")
            if name in by_name:
                problems.append(f"{where}.name = {literal(name)}: duplicate of {by_name[name]}.name")
            elif env_stem in by_env:
                other_where, other_name = by_env[env_stem]
                problems.append(f"{where}.name = {literal(name)}: shares the environment variables "
                                f"{env_stem} with {other_where} ({literal(other_name)})")
            by_name.setdefault(name, where)
            by_env.setdefault(env_stem, (where, name))
        if receiver is not None and len(problems) == before:
            receivers.append(receiver)
    return tuple(receivers)


def read_receiver(item: Mapping[str, Any], where: str, problems: list[str], environ: Mapping[str, str],
                  base_dir: Path | None = None) -> ReceiverConfig | None:
    """Check one receiver table by its type's rules; return it, or None if it has problems."""
    name = item.get("name")
    receiver_type = RECEIVER_TYPES.get(item.get("type")) if isinstance(item.get("type"), str) else None
    has_name = isinstance(name, str) and bool(name.strip())
    env = {}
    if receiver_type is not None and has_name:  # an unknown type's table is not filled from the environment
        for key in ("url", *receiver_type.takes):
            var = receiver_env_var(name, key)
            if environ.get(var):
                env[key] = (var, environ[var])
    before = len(problems)
    shows = {"url": receiver_type.show_url if receiver_type else redacted}  # a type we cannot vouch for: all of it
    values = read_table(ReceiverConfig, item, where, problems, env, base_dir, shows=shows)
    for key in ("name", "type"):
        if key not in item:
            problems.append(f"{where}.{key}: missing required key")
    if receiver_type is None:
        return None  # its type was reported, as missing or unknown
    for key in _OWN_KEYS:
        if key in item and key not in receiver_type.takes:
            users = [t.name for t in RECEIVER_TYPES.values() if key in t.takes]
            problems.append(f"{where}.{key}: not used by a receiver of type {receiver_type.name} "
                            f"(only by {', '.join(users)})")
    for key, default in receiver_type.defaults.items():
        if key not in item and key not in env:
            values[key] = default
    for key in receiver_type.requires:
        if key not in item and key not in env and key not in values:
            var = receiver_env_var(name, key) if has_name else f"VIRTWATCH_RECEIVER_<NAME>_{key.upper()}"
            problems.append(f"{where}.{key}: missing required key for a receiver of type {receiver_type.name} "
                            f"(or set {var})")
    return ReceiverConfig(**values) if len(problems) == before else None
