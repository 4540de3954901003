"""POST one JSON body to a receiver over urllib3, turning every failure into a NotifyError safe to log.

urllib3's own exceptions carry the full URL (a Slack webhook URL is the secret itself), so none of them is
passed on, not even as `__cause__`: the message names only the scheme, host and port, the kind of failure, and
up to 200 characters of the answer with every known secret replaced by <redacted>. Retries are not done here:
urllib3 gets `retries=False` and the caller applies `retry.is_retryable` and `retry.Backoff`.

urllib3 itself logs every request line at DEBUG (`"POST /services/T0/B0/secret HTTP/1.1" 200`), so the first
Transport puts a filter on the `urllib3.connectionpool` logger that redacts every secret a Transport was given.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (HTTPError, NewConnectionError, ProtocolError, ReadTimeoutError, SSLError,
                                TimeoutError as Urllib3Timeout)

from .errors import NotifyError
from .retry import is_retryable

REDACTED = "<redacted>"
BODY_EXCERPT_CHARS = 200
USER_AGENT = "virtwatch-alerts"


def safe_target(url: str) -> str:
    """Return scheme://host[:port] of url, the most of it an error message may show."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "?", parts.port
    except ValueError:
        return REDACTED
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Return text with every non-empty secret (longest first, also as JSON escapes it) replaced by <redacted>."""
    forms = set()
    for secret in (s for s in secrets if s):
        escaped = json.dumps(secret)[1:-1]
        forms.update((secret, escaped, escaped.replace("/", "\\/")))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


class _RedactSecrets(logging.Filter):
    """Redact the registered secrets from the records of the logger it sits on (urllib3's request lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = scrub(message, list(self.secrets))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_redactor = _RedactSecrets()
_redactor_lock = threading.Lock()


def _redact_in_urllib3_logs(secrets: Iterable[str]) -> None:
    """Have urllib3's connection-pool logger redact these secrets from now on."""
    with _redactor_lock:
        _redactor.secrets.update(secrets)
        logger = logging.getLogger("urllib3.connectionpool")
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)


def _url_secrets(url: str) -> list[str]:
    """Return the parts of a URL that may be secret: everything after scheme://host:port, and the userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    tail = url[len(parts.scheme) + 3 + len(parts.netloc):]
    found = [url] + ([tail] if len(tail) > 1 else [])
    if parts.password:
        found.append(parts.password)
    return found


class Transport:
    """One receiver's connection pool: POST JSON with a total timeout, raise NotifyError on any failure."""

    def __init__(self, who: str, timeout_seconds: float, secrets: Iterable[str | None] = (),
                 secret_url: str | None = None) -> None:
        """Name the receiver in errors as `who`; secrets (and secret_url's path and query) are never shown."""
        self.who = who
        self.timeout_seconds = timeout_seconds
        self._secrets = tuple(s for s in secrets if s) + tuple(_url_secrets(secret_url) if secret_url else ())
        _redact_in_urllib3_logs(self._secrets)
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=timeout_seconds))

    def __repr__(self) -> str:
        return f"Transport({self.who!r}, timeout_seconds={self.timeout_seconds})"

    def post_json(self, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> int:
        """POST body as application/json to url; return the 2xx status, or raise NotifyError."""
        target = safe_target(url)
        all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        try:
            response = self._pool.request("POST", url, body=body, headers=all_headers, redirect=False,
                                          preload_content=True)
        except HTTPError as err:
            raise NotifyError(f"{self.who}: POST {target} failed: {self._describe(err)}",
                              retryable=is_retryable(None)) from None
        except ValueError:  # urllib3 refuses a malformed URL before connecting
            raise NotifyError(f"{self.who}: POST {target} failed: malformed URL", retryable=False) from None
        if 200 <= response.status <= 299:
            return response.status
        excerpt = scrub(response.data[:4 * BODY_EXCERPT_CHARS].decode("utf-8", "replace"), self._secrets)
        excerpt = " ".join(excerpt.split())[:BODY_EXCERPT_CHARS]
        raise NotifyError(f"{self.who}: POST {target} answered {response.status}"
                          + (f": {excerpt}" if excerpt else ""),
                          retryable=is_retryable(response.status), status_code=response.status)

    def _describe(self, err: HTTPError) -> str:
        """Say what kind of failure err is without repeating its text, which holds the URL."""
        if isinstance(err, NewConnectionError):  # a subclass of the timeout error in urllib3 2.x: test first
            cause = _os_error(err)
            if cause is not None and cause.errno in (errno.ECONNREFUSED,):
                return "connection refused"
            return f"could not connect ({cause.strerror if cause is not None and cause.strerror else 'failed'})"
        if isinstance(err, (Urllib3Timeout, ReadTimeoutError)):
            return f"no answer within {self.timeout_seconds:g} s (timeout)"
        if isinstance(err, SSLError):
            return "TLS handshake failed"
        if isinstance(err, ProtocolError):
            return "connection broken before an answer"
        return f"HTTP failure ({type(err).__name__})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()


def _os_error(err: BaseException) -> OSError | None:
    """Return the first OSError with an errno in err's cause/context chain (or err itself)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None
