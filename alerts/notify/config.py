"""[[alerts.receivers]]: one place notifications go, as the config file says it, and what a receiver type is.

Every receiver table has `name`, `type`, `url` and `timeout_seconds`; a type may take more keys (`secret` for a
webhook, `routing_key` for PagerDuty) and default some (PagerDuty's url). Each receiver module declares its
`ReceiverType` beside its notifier; alerts.notify.receivers holds them by name and reads the tables.

Secrets may come from the environment, which wins over the file: `VIRTWATCH_RECEIVER_<NAME>_URL`, `_SECRET`,
`_ROUTING_KEY` (`receiver_env_var`), NAME being the receiver's name upper-cased with every character outside A-Z
and 0-9 made `_`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tsdb.config_keys import http_url, key, not_empty, redacted, repr_shown, seconds

if TYPE_CHECKING:
    from . import Notifier


def _known_type(value: str) -> str | None:
    """Refuse a receiver type no notifier implements, listing the known ones."""
    from .receivers import RECEIVER_TYPES

    return None if value in RECEIVER_TYPES else f"must be one of {', '.join(RECEIVER_TYPES)}"


@dataclass(frozen=True, repr=False)
class ReceiverConfig:
    """[[alerts.receivers]]: one place notifications go."""

    name: str = key(kind=str, check=not_empty)
    type: str = key(kind=str, check=_known_type)
    url: str = key(kind=str, check=http_url)
    secret: str | None = key(None, kind=str, check=not_empty, secret=True)
    routing_key: str | None = key(None, kind=str, check=not_empty, secret=True)
    timeout_seconds: float = key(10.0, kind=float, check=seconds)

    def __repr__(self) -> str:
        from .receivers import RECEIVER_TYPES

        receiver_type = RECEIVER_TYPES.get(self.type)
        return repr_shown(self, {"url": receiver_type.show_url if receiver_type else redacted})


@dataclass(frozen=True)
class ReceiverType:
    """One kind of receiver: the keys its table takes beyond the common ones, those it needs, its defaults, how
    its url may be shown, and `build(config, external_url)`, which makes its notifier."""

    name: str
    build: Callable[[ReceiverConfig, str], Notifier]
    takes: tuple[str, ...] = ()  # keys only some types take (secret, routing_key)
    requires: tuple[str, ...] = ("url",)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    show_url: Callable[[Any], Any] = redacted  # by default the url is the credential (a Slack webhook's is)


def receiver_env_var(name: str, key_name: str) -> str:
    """Name the environment variable that supplies key_name ("url", "secret", "routing_key") for a receiver."""
    return f"VIRTWATCH_RECEIVER_{re.sub(r'[^A-Z0-9]', '_', name.upper())}_{key_name.upper()}"
