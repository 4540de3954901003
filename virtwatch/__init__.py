"""virtwatch: the command-line home that wires the collector, tsdb, alerts and dashboard packages."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("virtwatch")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
