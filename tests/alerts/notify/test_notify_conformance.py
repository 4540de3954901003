"""Every receiver type passes the shared conformance checks in notify_conformance."""

import pytest

from alerts.notify.config import ReceiverConfig
from notify_conformance import assert_secret_never_leaks

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
HMAC_SECRET = "hmac-s3cret-value-9f8e7d"
SLACK_PATH = "/services/T0SECRET/B0SECRET/XXSECRETTOKENXX"
URL_TOKEN = "t0ken-in-the-query-5a5a"

RECEIVERS = {
    "a webhook never leaks its HMAC secret or a token in its URL": (
        lambda base: ReceiverConfig(name="hook", type="webhook", url=f"{base}/hook?token={URL_TOKEN}",
                                    secret=HMAC_SECRET, timeout_seconds=0.5),
        [HMAC_SECRET, URL_TOKEN]),
    "an alertmanager receiver never leaks a token in its URL": (
        lambda base: ReceiverConfig(name="am", type="alertmanager", url=f"{base}/t/{URL_TOKEN}",
                                    timeout_seconds=0.5),
        [URL_TOKEN]),
    "a pagerduty receiver never leaks its routing key": (
        lambda base: ReceiverConfig(name="pd", type="pagerduty", url=f"{base}/v2/enqueue", routing_key=ROUTING_KEY,
                                    timeout_seconds=0.5),
        [ROUTING_KEY]),
    "a slack receiver never leaks its webhook URL": (
        lambda base: ReceiverConfig(name="slack", type="slack", url=base + SLACK_PATH, timeout_seconds=0.5),
        [SLACK_PATH, "XXSECRETTOKENXX"]),
}


@pytest.mark.parametrize("case", RECEIVERS, ids=list(RECEIVERS))
def test_receiver_never_leaks_its_secret_into_errors_reprs_or_logs(case, caplog):
    make_config, fragments = RECEIVERS[case]
    assert_secret_never_leaks(make_config, fragments, caplog)


def test_the_pagerduty_check_is_meaningful_because_the_far_end_echoed_the_routing_key(caplog):
    make_config, fragments = RECEIVERS["a pagerduty receiver never leaks its routing key"]
    echoed = assert_secret_never_leaks(make_config, fragments, caplog)
    assert ROUTING_KEY in echoed
