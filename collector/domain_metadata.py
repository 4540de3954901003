"""Tags from domain metadata: `[agent.metadata_tags]` maps a tag to "NAMESPACE-URI PATH" (pure parsing + a cache).

libvirt returns a namespace's metadata as the XML of its root element (virDomainGetMetadata with
VIR_DOMAIN_METADATA_ELEMENT); PATH walks child elements below that root, e.g. `owner/project` in Nova's
`<nova:instance>`. Metadata changes rarely, so values are cached per domain and re-read after a while.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ElementTree
from typing import Callable

REFRESH_SECONDS = 300.0


def metadata_value(xml_text: str, namespace: str, path: str) -> str | None:
    """Return the stripped text of the element at `path` below the root of `xml_text`, or None."""
    try:
        node = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return None
    for step in path.strip("/").split("/"):
        child = node.find(f"{{{namespace}}}{step}")
        node = child if child is not None else node.find(step)
        if node is None:
            return None
    text = (node.text or "").strip()
    return text or None


class MetadataTags:
    """Reads and caches the configured metadata tags of each domain."""

    def __init__(self, specs: dict[str, str], fetch: Callable[[str, str], str | None],
                 clock: Callable[[], float] = time.monotonic):
        self._specs = {tag: spec.split(None, 1) for tag, spec in specs.items()}
        self._fetch = fetch  # (domain name, namespace uri) -> XML text or None
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}

    @property
    def enabled(self) -> bool:
        """Whether any metadata tag is configured."""
        return bool(self._specs)

    def cached(self, domain: str) -> dict[str, str]:
        """Return a domain's tags as last read, without calling libvirt ({} when never read)."""
        cached = self._cache.get(domain)
        return cached[1] if cached else {}

    def tags(self, domain: str) -> dict[str, str]:
        """Return the metadata tags of a domain (a libvirt call per namespace when not cached)."""
        if not self._specs:
            return {}
        cached = self._cache.get(domain)
        if cached and self._clock() - cached[0] < REFRESH_SECONDS:
            return cached[1]
        documents: dict[str, str | None] = {}
        tags = {}
        for tag, (namespace, path) in self._specs.items():
            if namespace not in documents:
                documents[namespace] = self._fetch(domain, namespace)
            value = metadata_value(documents[namespace], namespace, path) if documents[namespace] else None
            if value:
                tags[tag] = value
        self._cache[domain] = (self._clock(), tags)
        return tags

    def forget_except(self, domains: set[str]) -> None:
        """Drop cached tags of domains that no longer exist."""
        for name in set(self._cache) - domains:
            del self._cache[name]
