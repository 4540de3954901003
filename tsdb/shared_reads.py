"""A store whose identical reads are made once while their answer is kept: the SLOs rolled up side by side in one
round ask for the same raw points (availability and latency both count libvirtd's probes of the minute), and a
second asker waits for the first one's answer instead of reading again (at 2,000 hosts on InfluxDB 1.6 one such
read is ~0.2 s of the server's two cores)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from tsdb.store import Store


class SharedReads:
    """A store's `query` and `latest` reads, each distinct one made once (concurrent askers wait for it) while its
    answer is among the `keep` newest kept (treat them as read-only); everything else passes through. The bound
    keeps memory flat when the SLOs read a day of raw points an hour at a time (an engine's first round): each
    chunk is shared by the SLOs reading it at about the same time, then let go."""

    def __init__(self, store: Store, keep: int = 4) -> None:
        self.store, self.keep = store, max(1, keep)
        self.queries = 0  # reads made
        self._lock = threading.Lock()
        self._answers: OrderedDict[str, Future] = OrderedDict()

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
                while len(self._answers) > self.keep:  # an asker waiting on a dropped one still gets its answer
                    self._answers.popitem(last=False)
        if asking:
            try:
                answer.set_result(getattr(self.store, method)(*args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - every asker gets the store's error
                answer.set_exception(error)
        return answer.result()
