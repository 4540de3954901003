"""A store whose identical reads are made once while it lives: the SLOs rolled up side by side in one round ask for
the same raw points (availability and latency both count libvirtd's probes of the minute), and a second asker
waits for the first one's answer instead of reading again (at 2,000 hosts on InfluxDB 1.6 one such read is
~0.2 s of the server's two cores)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from tsdb.store import Store


class SharedReads:
    """A store's `query` and `latest` reads, each distinct one made once (concurrent askers wait for it), its
    answers kept while this object lives (one round: treat them as read-only); everything else passes through."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queries = 0  # distinct reads made
        self._lock = threading.Lock()
        self._answers: dict[str, Future] = {}

    def query(self, *args: Any, **kwargs: Any) -> Any:
        """The store's query, made once per distinct arguments."""
        return self._shared("query", args, kwargs)

    def latest(self, *args: Any, **kwargs: Any) -> Any:
        """The store's latest, made once per distinct arguments."""
        return self._shared("latest", args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _shared(self, method: str, args: tuple, kwargs: dict) -> Any:
        key = repr((method, args, sorted(kwargs.items())))
        with self._lock:
            answer = self._answers.get(key)
            asking = answer is None
            if asking:
                answer = self._answers[key] = Future()
                self.queries += 1
        if asking:
            try:
                answer.set_result(getattr(self.store, method)(*args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - every asker gets the store's error
                answer.set_exception(error)
        return answer.result()
