"""The InfluxDB backend: line protocol in (/write for 1.x, influxdb-client's WriteApi to /api/v2/write for
2.x/3.x), InfluxQL out (/query, served by 1.x, by 2.x's v1 API and by 3.x).

Writes go in batches, gzip-compressed, and the next batch is encoded while the previous one is on the
wire. Timeouts, refused connections, 5xx and 429 are retried with backoff (tsdb.retry); any other 4xx
raises StoreRejected carrying the server's message. A missing 1.x database is created on first write.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import urllib3
from urllib.parse import urlencode

from tsdb import influxql
from tsdb.errors import QueryError, StoreRejected, StoreUnavailable
from tsdb.lineprotocol import batches, encode_lines
from tsdb.point import Point, clean_name
from tsdb.query import Query, TimeLike, Where, normalize_where, now_ns, to_ns
from tsdb.retry import Backoff, is_retryable_status
from tsdb.store import Store
from tsdb.urls import StoreURL

if TYPE_CHECKING:  # frames are built only when reading; the agent's write path never loads pandas
    import pandas as pd

_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)
QUERY_CHUNK_ROWS = 10_000


def _server_message(body: bytes) -> str:
    """Return the `error` of an InfluxDB JSON error body, or the body's text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text[:500]


class InfluxStore(Store):
    """An InfluxDB store (1.x through /write, or 2.x/3.x through influxdb-client).

    Several aggregates are read by one SELECT, but InfluxDB 1.x builds a separate iterator for each aggregate of
    a statement (query/select.go, buildFieldIterators), each reading the series at its own moment: a point
    written during the read can count in one aggregate and not in another (measured on 1.6, see
    tests/tsdb/test_several_aggregates.py), hence `reads_one_snapshot = False`.
    """

    def __init__(self, url: StoreURL, token: str | None = None, username: str | None = None,
                 password: str | None = None, batch_size: int = 5000, timeout_seconds: float = 10.0,
                 max_retries: int = 5, gzip_enabled: bool = True, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.url = url
        self.display_url = url.display()
        self.batch_size = batch_size
        self.gzip_enabled = gzip_enabled
        self.backoff = backoff or Backoff(max_retries=max_retries)
        self._sleep = sleep
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self._http = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False, timeout=self._timeout)
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
        self._v2 = None
        self._v2_lock = threading.Lock()
        self._v2_credentials = token or (f"{username}:{password or ''}" if username else "")

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
        status, body = self._request("POST", target, data, headers)
        if status == 404 and "database not found" in _server_message(body) and not self._database_checked:
            self._database_checked = True
            self._create_database()
            status, body = self._request("POST", target, data, headers)
        self._check_write_status(status, body)

    def _check_write_status(self, status: int, body: bytes) -> None:
        if 200 <= status < 300:
            return
        message = _server_message(body)
        if is_retryable_status(status):
            raise _Retryable(f"HTTP {status}: {message}")
        raise StoreRejected(f"{self.display_url}: the store refused the write (HTTP {status}): {message}",
                            status=status, server_message=message)

    def _create_database(self) -> None:
        statement = f"CREATE DATABASE {influxql.ident(self.url.database)}"
        status, body = self._request("POST", f"{self.url.base_url}/query",
                                     urlencode({"q": statement}).encode(),
                                     dict(self._headers, **{"Content-Type": "application/x-www-form-urlencoded"}))
        if status >= 300:
            raise StoreRejected(f"{self.display_url}: could not create database {self.url.database!r} "
                                f"(HTTP {status}): {_server_message(body)}", status, _server_message(body))

    def _request(self, method: str, target: str, data: bytes | None, headers: dict,
                 fields: dict | None = None, preload: bool = True):
        try:
            response = self._http.request(method, target, body=data, fields=fields, headers=headers,
                                          preload_content=preload, redirect=False)
        except _NETWORK_ERRORS as error:
            raise _Retryable(f"{type(error).__name__}: {error}") from None
        return response.status, response.data if preload else response

    def _send_v2(self, data: bytes) -> None:
        from influxdb_client.rest import ApiException

        api = self._v2_write_api()
        try:
            api.write(bucket=self.url.database, org=self.url.org or "-", record=data, write_precision="ns")
        except ApiException as error:
            body = error.body.encode() if isinstance(error.body, str) else (error.body or b"")
            message = _server_message(body) or str(error.reason)
            if error.status is None or is_retryable_status(error.status):
                raise _Retryable(f"HTTP {error.status}: {message}") from None
            raise StoreRejected(f"{self.display_url}: the store refused the write (HTTP {error.status}): "
                                f"{message}", status=error.status, server_message=message) from None
        except _NETWORK_ERRORS as error:
            raise _Retryable(f"{type(error).__name__}: {error}") from None

    def _v2_write_api(self):
        with self._v2_lock:
            if self._v2 is None:
                from influxdb_client import InfluxDBClient
                from influxdb_client.client.write_api import SYNCHRONOUS

                client = InfluxDBClient(url=self.url.base_url, token=self._v2_credentials, org=self.url.org or "-",
                                        timeout=int(self._timeout.read_timeout * 1000), enable_gzip=False,
                                        retries=False)
                # the body is already gzip-compressed when enabled; tell the server so
                if self.gzip_enabled:
                    client.api_client.default_headers["Content-Encoding"] = "gzip"
                self._v2 = (client, client.write_api(write_options=SYNCHRONOUS))
            return self._v2[1]

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
                status, data = self._request("POST", f"{self.url.base_url}/query", body, headers)
            except _Retryable as error:
                last = str(error)
                continue
            if is_retryable_status(status):
                last = f"HTTP {status}: {_server_message(data)}"
                continue
            if status >= 300:
                raise QueryError(f"{self.display_url}: the store refused the query (HTTP {status}): "
                                 f"{_server_message(data)}")
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
        if self._v2 is not None:
            self._v2[0].close()
        self._http.clear()


class _Retryable(Exception):
    """A failure worth another attempt (network error, timeout, 5xx, 429)."""
