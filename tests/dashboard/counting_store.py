"""A store wrapper for tests that count and inspect the reads a dashboard makes."""

from __future__ import annotations


class CountingStore:
    """A store that records every call made to it (method, arguments) and passes it on."""

    def __init__(self, store):
        self.store = store
        self.display_url = store.display_url
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name):
        method = getattr(self.store, name)
        if not callable(method):
            return method

        def recorded(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return method(*args, **kwargs)
        return recorded

    def texts(self) -> list[str]:
        """Return every string passed to the store so far (arguments, filter values, lists of them)."""
        found: list[str] = []

        def walk(value):
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, dict):
                for key, item in value.items():
                    walk(key)
                    walk(item)
            elif isinstance(value, (list, tuple, set, frozenset)):
                for item in value:
                    walk(item)
        for _name, args, kwargs in self.calls:
            walk(args)
            walk(kwargs)
        return found
