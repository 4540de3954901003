"""The InfluxDB backend: line protocol in (/write for 1.x, /api/v2/write for 2.x/3.x), InfluxQL out (/query,
served by 1.x, by 2.x's v1 API and by 3.x).

Writes go in batches, gzip-compressed, and the next batch is encoded while the previous one is on the
wire. Timeouts, refused connections, 5xx and 429 are retried with backoff (tsdb.retry); any other 4xx
raises StoreRejected carrying the server's message. A missing 1.x database is created on first write.

Every request goes through tsdb.bounded_http.BoundedHTTP: `timeout_seconds` is a deadline for the whole request
(connect, send, every read), not for each read, and an answer is read up to a cap: QUERY_ANSWER_MAX_BYTES for a
query's rows, ERROR_ANSWER_MAX_BYTES for an error (a write's 2xx answer is not read at all). A query answer over
its cap raises StoreUnavailable at once (the same query would be as large again); a peer that drips or hangs
costs each attempt its deadline, and then StoreUnavailable names the deadline.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterable, Sequence
from urllib.parse import urlencode

from tsdb import influxql
from tsdb.errors import QueryError, StoreRejected, StoreUnavailable
from tsdb.lineprotocol import batches, encode_lines
from tsdb.point import Point, clean_name
from tsdb.query import Query, TimeLike, Where, normalize_where, now_ns, to_ns
from tsdb.bounded_http import BoundedHTTP, RequestFailed
from tsdb.retry import Backoff, is_retryable
from tsdb.store import Store
from tsdb.urls import StoreURL

if TYPE_CHECKING:  # frames are built only when reading; the agent's write path never loads pandas
    import pandas as pd

QUERY_CHUNK_ROWS = 10_000
# What one answer may cost. A query's rows are read whole before parsing: 1M rows of time and two values are
# about 50 MB of InfluxDB's JSON, so 256 MiB leaves room for any read this project makes (a dashboard range over
# a large fleet) and still stops a store, or something posing as one, from taking the process's memory.
QUERY_ANSWER_MAX_BYTES = 256 * 1024 * 1024
# An error's answer is a line of JSON: 64 KiB is far more than its message needs. A 2xx write's is not read.
ERROR_ANSWER_MAX_BYTES = 64 * 1024


def _server_message(body: bytes) -> str:
    """Return the `error` of an InfluxDB JSON error body, or the body's text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text[:500]


class InfluxStore(Store):
    """An InfluxDB store (1.x through /write, or 2.x/3.x through /api/v2/write; InfluxQL on /query for both).

    Several aggregates are read by one SELECT, but InfluxDB 1.x builds a separate iterator for each aggregate of
    a statement (query/select.go, buildFieldIterators), each reading the series at its own moment: a point
    written during the read can count in one aggregate and not in another (measured on 1.6, see
    tests/tsdb/test_several_aggregates.py), hence `reads_one_snapshot = False`.
    """

    def __init__(self, url: StoreURL, token: str | None = None, username: str | None = None,
                 password: str | None = None, batch_size: int = 5000, timeout_seconds: float = 10.0,
                 max_retries: int = 5, gzip_enabled: bool = True, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 query_answer_max_bytes: int = QUERY_ANSWER_MAX_BYTES):
        """timeout_seconds bounds each request as a whole; query_answer_max_bytes caps what one query reads."""
        self.url = url
        self.display_url = url.display()
        self.batch_size = batch_size
        self.gzip_enabled = gzip_enabled
        self.backoff = backoff or Backoff(max_retries=max_retries)
        self._sleep = sleep
        self.query_answer_max_bytes = query_answer_max_bytes
        self._http = BoundedHTTP(timeout_seconds, max_idle=4)
        self._headers = {"User-Agent": "virtwatch"}
        username = username or url.username
        self._token = token
        if token:
            self._headers["Authorization"] = f"Token {token}"
        elif username:
            pair = f"{username}:{password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._database_checked = False
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="virtwatch-store-write")
        # /api/v2/write takes "Token <token>"; 1.8's v2 API also "Token <user>:<password>"
        credentials = token or (f"{username}:{password or ''}" if username else "")
        self._v2_headers = dict(self._headers, **({"Authorization": f"Token {credentials}"} if credentials else {}))

    @property
    def answer_bytes_read(self) -> int:
        """Return how many bytes of answer bodies this store has read (what a flood cost, for tests)."""
        return self._http.body_bytes_read

    # ---- writing -------------------------------------------------------------------------------

    def write(self, points: Iterable[Point], *, retry: bool = True) -> int:
        """Write points in batches, encoding the next batch while the previous one is sent; `retry=False`
        makes one attempt per batch."""
        written = 0
        pending = None
        try:
            for batch in batches(points, self.batch_size):
                lines = encode_lines(batch)
                if not lines:
                    continue
                if pending is not None:
                    done, pending = pending, None
                    written += done.result()
                pending = self._sender.submit(self._send, "\n".join(lines) + "\n", len(lines), retry)
            if pending is not None:
                done, pending = pending, None
                written += done.result()
        finally:
            if pending is not None:  # encoding failed while a batch was on the wire: let it finish
                try:
                    pending.result()
                except Exception:  # noqa: BLE001 - the error already being raised says what went wrong
                    pass
        return written

    def _send(self, body: str, count: int, retry: bool = True) -> int:
        data = body.encode("utf-8")
        if self.gzip_enabled:
            data = gzip.compress(data, compresslevel=1)
        send = self._send_v1 if self.url.kind == "influxdb1" else self._send_v2
        self._with_retries("write", lambda: send(data), retries=self.backoff.max_retries if retry else 0)
        return count

    def _with_retries(self, what: str, attempt: Callable[[], None], retries: int | None = None) -> None:
        """Run attempt() until it succeeds, retrying what is retryable; raise StoreUnavailable at the end."""
        last = ""
        retries = self.backoff.max_retries if retries is None else retries
        for retry in range(retries + 1):
            if retry:
                self._sleep(self.backoff.delay(retry - 1))
            try:
                attempt()
                return
            except _Retryable as error:
                last = str(error)
        raise StoreUnavailable(f"{self.display_url}: {what} failed after {retries + 1} "
                               f"attempt{'s' if retries else ''}: {last}")

    def _send_v1(self, data: bytes) -> None:
        fields = {"db": self.url.database, "precision": "ns"}
        if self.url.retention_policy:
            fields["rp"] = self.url.retention_policy
        headers = dict(self._headers, **{"Content-Type": "text/plain; charset=utf-8"})
        if self.gzip_enabled:
            headers["Content-Encoding"] = "gzip"
        target = f"{self.url.base_url}/write?" + urlencode(fields)
        status, body, _ = self._request("POST", target, data, headers)
        if status == 404 and "database not found" in _server_message(body) and not self._database_checked:
            self._database_checked = True
            self._create_database()
            status, body, _ = self._request("POST", target, data, headers)
        self._check_write_status(status, body)

    def _check_write_status(self, status: int, body: bytes) -> None:
        if 200 <= status < 300:
            return
        message = _server_message(body)
        if is_retryable(status):
            raise _Retryable(f"HTTP {status}: {message}")
        raise StoreRejected(f"{self.display_url}: the store refused the write (HTTP {status}): {message}",
                            status=status, server_message=message)

    def _create_database(self) -> None:
        statement = f"CREATE DATABASE {influxql.ident(self.url.database)}"
        status, body, _ = self._request("POST", f"{self.url.base_url}/query",
                                        urlencode({"q": statement}).encode(),
                                        dict(self._headers, **{"Content-Type": "application/x-www-form-urlencoded"}))
        if status >= 300:
            raise StoreRejected(f"{self.display_url}: could not create database {self.url.database!r} "
                                f"(HTTP {status}): {_server_message(body)}", status, _server_message(body))

    def _request(self, method: str, target: str, data: bytes | None, headers: dict,
                 success_max_bytes: int = 0) -> tuple[int, bytes, bool]:
        """Send one request within the deadline; return (status, body, whether some was left unread).

        A 2xx answer's body is read up to success_max_bytes (0: not at all, a write's answer has nothing to say),
        any other's up to ERROR_ANSWER_MAX_BYTES.
        """
        try:
            return self._http.request(method, target, data, headers, max_body_bytes=ERROR_ANSWER_MAX_BYTES,
                                      max_success_body_bytes=success_max_bytes)
        except RequestFailed as failure:
            raise _Retryable(failure.message) from None

    def _send_v2(self, data: bytes) -> None:
        fields = {"org": self.url.org or "-", "bucket": self.url.database, "precision": "ns"}
        headers = dict(self._v2_headers, **{"Content-Type": "text/plain; charset=utf-8", "Accept": "application/json"})
        if self.gzip_enabled:
            headers["Content-Encoding"] = "gzip"
        status, body, _ = self._request("POST", f"{self.url.base_url}/api/v2/write?" + urlencode(fields), data,
                                        headers)
        self._check_write_status(status, body)

    # ---- reading -------------------------------------------------------------------------------

    def _influxql(self, statement: str) -> list[dict]:
        """Run one InfluxQL statement; return its series.

        One plain answer is 20-60 ms faster than a chunked one (measured on 1M points); when the server
        cuts the answer short (its max-row-limit marks it "partial"), the statement runs again chunked.
        """
        series, partial = self._run_influxql({"q": statement})
        if partial:
            series, _ = self._run_influxql({"q": statement, "chunked": "true", "chunk_size": str(QUERY_CHUNK_ROWS)})
        return series

    def _run_influxql(self, query_fields: dict) -> tuple[list[dict], bool]:
        fields = {"db": self.url.database, "epoch": "ns", **query_fields}
        chunked = "chunked" in fields
        if self.url.retention_policy:
            fields["rp"] = self.url.retention_policy
        headers = dict(self._headers, **{"Content-Type": "application/x-www-form-urlencoded"})
        body = urlencode(fields).encode()
        result: dict = {}
        for retry in range(self.backoff.max_retries + 1):
            if retry:
                self._sleep(self.backoff.delay(retry - 1))
            try:
                status, data, cut = self._request("POST", f"{self.url.base_url}/query", body, headers,
                                                  success_max_bytes=self.query_answer_max_bytes)
            except _Retryable as error:
                last = str(error)
                continue
            if is_retryable(status):
                last = f"HTTP {status}: {_server_message(data)}"
                continue
            if status >= 300:
                raise QueryError(f"{self.display_url}: the store refused the query (HTTP {status}): "
                                 f"{_server_message(data)}")
            if cut:  # rows left unread: the same query would be as large again, so no retry
                raise StoreUnavailable(f"{self.display_url}: query answer larger than {self.query_answer_max_bytes} "
                                       f"bytes (query_answer_max_bytes); the rest was not read")
            return self._series(data, result, chunked)
        raise StoreUnavailable(f"{self.display_url}: query failed after {self.backoff.max_retries + 1} "
                               f"attempts: {last}")

    def _series(self, data: bytes, merged: dict, chunked: bool) -> tuple[list[dict], bool]:
        """Return the series of an answer (merged across chunks) and whether a plain answer was cut short."""
        partial = False
        for line in data.splitlines() if chunked else [data]:
            if not line.strip():
                continue
            document = json.loads(line)
            if "error" in document:
                raise QueryError(f"{self.display_url}: {document['error']}")
            for result in document.get("results", []):
                if "error" in result:
                    if result["error"].startswith("database not found"):
                        return [], False
                    raise QueryError(f"{self.display_url}: {result['error']}")
                partial = partial or (not chunked and bool(result.get("partial")))
                for series in result.get("series", []):
                    partial = partial or (not chunked and bool(series.get("partial")))
                    key = (series.get("name"), tuple(sorted((series.get("tags") or {}).items())))
                    if key in merged:
                        merged[key]["values"].extend(series.get("values", []))
                    else:
                        merged[key] = {"name": series.get("name"), "tags": series.get("tags") or {},
                                       "columns": series["columns"], "values": list(series.get("values", []))}
        return list(merged.values()), partial

    def _frame(self, series: list[dict], group_by: Sequence[str], fields: Sequence[str]) -> pd.DataFrame:
        from tsdb.frames import empty_frame, make_frame

        times: list[int] = []
        tags: dict[str, list] = {t: [] for t in group_by}
        columns: dict[str, list] = {f: [] for f in fields}
        for one in series:
            index = {name: i for i, name in enumerate(one["columns"])}
            rows = one["values"]
            times.extend(row[0] for row in rows)
            for tag in group_by:
                tags[tag].extend([one["tags"].get(tag, "")] * len(rows))
            for field in fields:
                position = index.get(field)
                columns[field].extend(row[position] if position is not None else None for row in rows)
        if not times:
            return empty_frame(group_by, fields)
        return make_frame(times, tags, columns)

    def read(self, query: Query) -> pd.DataFrame:
        """Return the frame answering a Query."""
        series = self._influxql(influxql.select(query))
        return self._frame(series, query.group_by, query.columns)

    def latest(self, measurement: str, fields: Sequence[str], since: TimeLike, until: TimeLike | None = None,
               where: Where | None = None, group_by: Sequence[str] = ()) -> pd.DataFrame:
        """Return the newest point (within [since, until]) of each group."""
        fields = tuple(clean_name(f) for f in fields)
        group_by = tuple(clean_name(t) for t in group_by)
        until_ns = now_ns() if until is None else to_ns(until, "until")
        statement = influxql.select_latest(clean_name(measurement), fields, to_ns(since, "since"), until_ns,
                                           normalize_where(where), group_by)
        return self._frame(self._influxql(statement), group_by, fields)

    def tag_values(self, measurement: str, tag: str, where: Where | None = None) -> list[str]:
        """Return the sorted distinct values of a tag."""
        statement = influxql.show_tag_values(clean_name(measurement), clean_name(tag), normalize_where(where))
        values = {row[1] for one in self._influxql(statement) for row in one["values"]}
        return sorted(values)

    def close(self) -> None:
        """Stop the sender thread and close connections."""
        self._sender.shutdown(wait=True)
        self._http.close()


class _Retryable(Exception):
    """A failure worth another attempt (network error, timeout, 5xx, 429)."""
