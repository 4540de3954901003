"""POST one JSON body to a receiver within a deadline, turning every failure into a NotifyError safe to log.

Requests go through tsdb.bounded_http.BoundedHTTP: `timeout_seconds` is a deadline for the whole request (connect, send
and every read), so a receiver that answers one byte every 0.5 s is cut at the deadline like one that never
answers. A 2xx status is all a receiver has to say, as in Alertmanager: its body is not waited for. Of any other
answer at most ANSWER_MAX_BYTES are read, for the error's excerpt (a 400 MB error page costs 64 KiB; the rest is
never read). Failures name only the scheme, host and port, the kind of failure, and up to 200 characters of the answer
with every known secret replaced by <redacted>: the URL itself may be the secret (a Slack webhook's is), so no
library error text, which would hold it, is passed on, not even as `__cause__`. Retries are not done here: the
caller applies tsdb.retry's `is_retryable` and `Backoff`. http.client logs nothing, so no request line with a
secret path reaches the logs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from tsdb.bounded_http import MALFORMED_URL, BoundedHTTP, RequestFailed
from tsdb.retry import is_retryable

from .errors import NotifyError

REDACTED = "<redacted>"
BODY_EXCERPT_CHARS = 200
ANSWER_MAX_BYTES = 64 * 1024  # what a receiver's answer may cost; the error excerpt needs 800 bytes of it
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
    """One receiver's connection: POST JSON within a deadline, read a capped answer, raise NotifyError on failure."""

    def __init__(self, who: str, timeout_seconds: float, secrets: Iterable[str | None] = (),
                 secret_url: str | None = None) -> None:
        """Name the receiver in errors as `who`; secrets (and secret_url's path and query) are never shown."""
        self.who = who
        self.timeout_seconds = timeout_seconds
        self._secrets = tuple(s for s in secrets if s) + tuple(_url_secrets(secret_url) if secret_url else ())
        self._http = BoundedHTTP(timeout_seconds, max_idle=1)

    def __repr__(self) -> str:
        return f"Transport({self.who!r}, timeout_seconds={self.timeout_seconds})"

    @property
    def answer_bytes_read(self) -> int:
        """Return how many bytes of answers this transport has read (what a flood cost, for tests)."""
        return self._http.body_bytes_read

    def post_json(self, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> int:
        """POST body as application/json to url; return the 2xx status, or raise NotifyError."""
        target = safe_target(url)
        all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        try:
            answer = self._http.request("POST", url, body, all_headers, max_body_bytes=ANSWER_MAX_BYTES,
                                        max_success_body_bytes=0)
        except RequestFailed as failure:
            retryable = is_retryable(None) and failure.kind != MALFORMED_URL
            raise NotifyError(f"{self.who}: POST {target} failed: {failure.message}", retryable=retryable) from None
        if 200 <= answer.status <= 299:
            return answer.status
        excerpt = scrub(answer.body[:4 * BODY_EXCERPT_CHARS].decode("utf-8", "replace"), self._secrets)
        excerpt = " ".join(excerpt.split())[:BODY_EXCERPT_CHARS]
        raise NotifyError(f"{self.who}: POST {target} answered {answer.status}"
                          + (f": {excerpt}" if excerpt else ""),
                          retryable=is_retryable(answer.status), status_code=answer.status)

    def close(self) -> None:
        """Close the kept connection."""
        self._http.close()

