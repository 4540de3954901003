"""Fixtures for the alerts tests: a real HTTP receiver on 127.0.0.1 and a private Alertmanager."""

from __future__ import annotations

import pytest

from receivers import AlertmanagerServer, HTTPReceiver
from servers import free_port, started


@pytest.fixture
def http_receiver():
    """A recording HTTP receiver on 127.0.0.1 answering 200 until given a script; stopped afterwards."""
    receiver = HTTPReceiver(port=free_port())
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def unstarted_receiver():
    """A receiver that owns a port but does not listen yet: connections are refused until .start()."""
    receiver = HTTPReceiver(port=free_port())
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def alertmanager_server(tmp_path_factory):
    """A private Prometheus Alertmanager (Debian prometheus-alertmanager) for the session, no clustering."""
    server = started(AlertmanagerServer(tmp_path_factory.mktemp("alertmanager")))
    yield server
    server.stop()
