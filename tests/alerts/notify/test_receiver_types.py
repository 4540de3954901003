"""Receivers are looked up by their `type` in one registry (alerts.notify.receivers.RECEIVER_TYPES): the config
takes exactly those types, each builds its own notifier, and a new type needs no change anywhere else."""

import io

import pytest

from alerts.notify import RECEIVER_TYPES, ReceiverConfig, ReceiverType, notifier_for
from alerts.notify.console import ConsoleNotifier
from notify_conformance import sample_notification
from virtwatch.config import ConfigError, config_from_dict

URLS = {"webhook": "https://hooks.example.com/a", "alertmanager": "http://am.example.internal:9093",
        "pagerduty": "https://events.pagerduty.com/v2/enqueue", "slack": "https://hooks.slack.com/services/T/B/X"}


def receivers_of(*tables):
    """Read [[alerts.receivers]] tables through the whole config."""
    return config_from_dict({"alerts": {"receivers": list(tables)}}, {}).alerts.receivers


def test_the_registry_holds_the_four_receiver_types_in_the_order_messages_list_them():
    assert list(RECEIVER_TYPES) == ["webhook", "alertmanager", "pagerduty", "slack"]


@pytest.mark.parametrize("type_name", list(RECEIVER_TYPES))
def test_each_type_builds_its_own_notifier_named_as_configured(type_name):
    config = ReceiverConfig(name=f"my-{type_name}", type=type_name, url=URLS[type_name], routing_key="rk")
    notifier = notifier_for(config, "https://virtwatch.example.com")
    assert type(notifier).__name__.lower().startswith(type_name) and notifier.name == f"my-{type_name}"


def test_an_unknown_type_names_the_key_and_lists_the_known_types():
    with pytest.raises(ConfigError) as caught:
        receivers_of({"name": "mail", "type": "email", "url": "https://mail.example.com"})
    assert caught.value.problems == [f'alerts.receivers[0].type = "email": must be one of '
                                     f'{", ".join(RECEIVER_TYPES)}']
    with pytest.raises(ValueError, match="unknown type 'email'; known types: webhook, alertmanager"):
        notifier_for(ReceiverConfig(name="mail", type="email", url="https://mail.example.com"))


def test_a_type_added_to_the_registry_is_read_and_built_with_no_other_change(monkeypatch):
    stream = io.StringIO()
    console = ReceiverType("console", build=lambda config, _url: ConsoleNotifier(config.name, stream),
                           requires=(), defaults={"url": "http://localhost"})
    monkeypatch.setitem(RECEIVER_TYPES, "console", console)
    [receiver] = receivers_of({"name": "desk", "type": "console"})
    assert receiver == ReceiverConfig(name="desk", type="console", url="http://localhost")
    notifier_for(receiver).send(sample_notification())
    assert "***" in stream.getvalue()
    with pytest.raises(ConfigError) as caught:
        receivers_of({"name": "desk", "type": "console", "secret": "s3cr3t"})
    assert caught.value.problems == ["alerts.receivers[0].secret: not used by a receiver of type console "
                                     "(only by webhook)"]
