"""The forensics bundle's stored form: JSON, or zlib+base64 when over the store's string limit; and its text.

A bundle is a JSON object (the agent builds it: collector.forensics) with at least `version`, `host`,
`trigger`, `time` and `cause`, and the sections `steps`, `process`, `threads`, `pool`, `clients`,
`job_holders`, `daemon_log`, `kernel_log`, `qemu`, `diagnosis` and optionally `gdb`. The store keeps it in
the `forensics` measurement's `bundle` field; InfluxDB refuses strings over 64 KB, so a bigger bundle is
compressed, and one still too big loses the oldest log lines and kernel stacks first (`shrink_bundle`).
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from tsdb.point import printable

#: InfluxDB's limit on a string field is 64 KB; keep room for the line protocol's escaping
MAX_STORED_BYTES = 60_000
JSON, ZLIB_BASE64 = "json", "zlib+base64"


class BundleError(ValueError):
    """A stored bundle that cannot be decoded."""


def encode_bundle(bundle: dict[str, Any], limit: int = MAX_STORED_BYTES) -> tuple[str, str]:
    """Return (text, encoding) for the store: the JSON when it fits in `limit`, else zlib+base64; a bundle
    that does not fit even so is shrunk (`shrink_bundle`) until it does."""
    while True:
        text = json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode("utf-8")) <= limit:
            return text, JSON
        packed = base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")
        if len(packed) <= limit:
            return packed, ZLIB_BASE64
        smaller = shrink_bundle(bundle)
        if smaller is None:
            raise BundleError(f"the bundle does not fit in {limit} bytes even without its logs and stacks")
        bundle = smaller


def shrink_bundle(bundle: dict[str, Any]) -> dict[str, Any] | None:
    """Return a copy made smaller by one step, noted in `shrunk`: the daemon log's oldest half, then the kernel
    log's, then every kernel stack, then whole sections; None when there is nothing left to drop."""
    bundle = dict(bundle)
    for section in ("daemon_log", "kernel_log"):
        lines = bundle.get(section) or []
        if len(lines) > 20:
            bundle[section] = lines[len(lines) // 2:]
            bundle["shrunk"] = [*bundle.get("shrunk", []), f"{section}: oldest {len(lines) // 2} lines dropped"]
            return bundle
    threads = bundle.get("threads") or []
    if any(thread.get("stack") for thread in threads):
        bundle["threads"] = [{**thread, "stack": None} for thread in threads]
        bundle["shrunk"] = [*bundle.get("shrunk", []), "threads: kernel stacks dropped"]
        return bundle
    for section in ("daemon_log", "kernel_log", "clients", "gdb"):
        if bundle.get(section):
            bundle[section] = [] if section != "gdb" else ""
            bundle["shrunk"] = [*bundle.get("shrunk", []), f"{section}: dropped"]
            return bundle
    return None


def decode_bundle(text: str, encoding: str) -> dict[str, Any]:
    """Return the bundle a stored `bundle` field holds; BundleError when it is not one."""
    try:
        if encoding == ZLIB_BASE64:
            text = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True)).decode("utf-8")
        elif encoding != JSON:
            raise BundleError(f"unknown bundle encoding {encoding!r}")
        bundle = json.loads(text)
    except (ValueError, zlib.error, UnicodeError) as error:
        raise BundleError(f"not a forensics bundle: {error}") from None
    if not isinstance(bundle, dict):
        raise BundleError("not a forensics bundle: not a JSON object")
    return bundle


def _section(title: str) -> list[str]:
    return ["", f"== {title}"]


def render_bundle(bundle: dict[str, Any]) -> str:
    """Return the bundle as plain text for a person: cause, steps, threads, pool, clients, logs, guests."""
    out = [f"virtwatch forensics: {bundle.get('trigger', '?')} on {bundle.get('host', '?')} at "
           f"{bundle.get('time', '?')}", f"cause: {bundle.get('cause', '')}"]
    if bundle.get("kernel_line"):
        out.append(f"kernel: {bundle['kernel_line']}")
    steps = bundle.get("steps") or []
    if steps:
        out += _section("capture steps")
        out += [f"{s.get('name')}: {s.get('status')} in {s.get('ms', 0):.1f} ms"
                + (f" ({s['error']})" if s.get("error") else "") for s in steps]
    for note in bundle.get("shrunk", []):
        out.append(f"(shrunk to fit the store: {note})")
    process = bundle.get("process") or {}
    if process:
        out += _section("process")
        out += [f"{key}: {value}" for key, value in process.items()]
    threads = bundle.get("threads") or []
    seen = bundle.get("threads_seen_before") or {}
    if not threads and seen:
        out += _section(f"threads the agent saw before the process went ({len(seen)})")
        out += [f"{tid} '{printable(str(name))}'" for tid, name in seen.items()]
    out += _section(f"threads ({len(threads)})")
    for thread in threads:
        out.append(f"{thread.get('tid')} '{printable(str(thread.get('name')))}' state {thread.get('state')} wchan "
                   f"{thread.get('wchan') or '-'} syscall {thread.get('syscall') or '-'}")
        out += [f"    {frame}" for frame in thread.get("stack") or []]
    for title, key in (("worker pool", "pool"),):
        values = bundle.get(key) or {}
        if values:
            out += _section(title)
            out += [f"{name}: {value}" for name, value in values.items()]
    clients = bundle.get("clients") or []
    out += _section(f"clients ({len(clients)})")
    out += [", ".join(f"{k}={v}" for k, v in client.items()) for client in clients]
    holders = bundle.get("job_holders") or []
    if holders:
        out += _section("job-lock holders (daemon log)")
        out += [holder.get("description") or json.dumps(holder, ensure_ascii=False) for holder in holders]
    qemu = bundle.get("qemu") or []
    out += _section(f"QEMU processes ({len(qemu)})")
    out += [f"{guest.get('pid')} state {guest.get('state')} guest '{printable(str(guest.get('domain')))}'" for guest in qemu]
    for title, key in (("daemon log (last lines)", "daemon_log"), ("kernel log (around the event)", "kernel_log")):
        out += _section(title)
        out += list(bundle.get(key) or []) or ["(nothing)"]
    if bundle.get("gdb"):
        out += _section("gdb: thread apply all bt")
        out.append(bundle["gdb"])
    return "\n".join(out) + "\n"
