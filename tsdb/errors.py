"""Errors raised by the store.

    StoreError
     ├── StoreURLError      a store URL that cannot be parsed (names the URL part and the reason)
     ├── PointError         a point that cannot be stored (bad name, bad value type)
     ├── StoreUnavailable   the store could not be reached or answered 5xx/429 after every retry
     │                      (retryable: the agent spools the points and tries again later)
     ├── StoreRejected      the store refused the request (4xx); carries the server's own message
     └── QueryError         a query the store refused or could not run; carries the server's message
"""


class StoreError(Exception):
    """Base class of every error the store raises."""


class StoreURLError(StoreError, ValueError):
    """A store URL that cannot be parsed."""


class PointError(StoreError, ValueError):
    """A point that cannot be stored."""


class StoreUnavailable(StoreError):
    """The store could not be reached, timed out, or answered 5xx/429 after every retry."""

    retryable = True


class StoreRejected(StoreError):
    """The store refused the request with a 4xx answer; `status` and the server's `server_message` are kept."""

    retryable = False

    def __init__(self, message: str, status: int | None = None, server_message: str = ""):
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class QueryError(StoreError):
    """A query the store refused or could not run."""
