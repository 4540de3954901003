"""The correlation page's analyses, kept per worker: the inputs read per range, the results per lag.

    result = correlation_result(store, hosts, start_ns, end_ns, kinds, signal, lag_steps)

The analysis (analysis.analyze over every default signal, plus the one picked when it is not a default) is kept
per (store URL, scope, range in whole steps, kinds, step, signals, lags) in a small LRU, and the inputs it reads
per the same key without the lags: picking another signal only re-renders, picking another lag only re-analyses.
Keys hold the store's URL, never id(store): ids are reused once a store is gone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from dashboard.correlation_range import analysis_range

if TYPE_CHECKING:
    from analysis import CorrelationResult
    from tsdb.store import Store

INPUTS_CACHE_MAX = 4
RESULTS_CACHE_MAX = 16
_cache_lock = threading.Lock()
_inputs_cache: OrderedDict[tuple, Any] = OrderedDict()
_results_cache: OrderedDict[tuple, Any] = OrderedDict()
_key_locks: dict[tuple, threading.Lock] = {}
cache_counts = {"inputs_hits": 0, "inputs_misses": 0, "results_hits": 0, "results_misses": 0}


def analysis_signals(signal: str) -> tuple[str, ...]:
    """Return the signals analysed when `signal` is drawn: the defaults, and it too when it is not one of them."""
    from analysis import DEFAULT_SIGNALS

    return tuple(DEFAULT_SIGNALS) if signal in DEFAULT_SIGNALS else (*DEFAULT_SIGNALS, signal)


def correlation_result(store: Store, hosts: tuple[str, ...], start_ns: int, end_ns: int, kinds: tuple[str, ...],
                       signal: str, lag_steps: int | tuple[int, ...]) -> CorrelationResult:
    """Return the analysis of `kinds` against the signals for `hosts` (none: the fleet) over [start_ns, end_ns).

    The range becomes whole steps (analysis_range), so a relative range that moves by less than a step hits the
    cache. ValueError when the range is shorter than one step.
    """
    from analysis import analyze, load_inputs

    first, last, step = analysis_range(start_ns, end_ns)
    signals = analysis_signals(signal)
    inputs_key = (store.display_url, tuple(hosts), first, last, tuple(kinds), step, signals)
    result_key = (*inputs_key, lag_steps)
    found = _cached(_results_cache, result_key, "results")
    if found is not None:
        return found
    with _key_lock(result_key):  # one analysis per key at a time: a second caller waits for the first's result
        found = _cached(_results_cache, result_key, None)  # made while this caller waited
        if found is not None:
            return found
        with _key_lock(inputs_key):
            inputs = _cached(_inputs_cache, inputs_key, "inputs")
            if inputs is None:
                inputs = load_inputs(store, list(hosts) or None, first, last, signals=list(signals),
                                     kinds=list(kinds), step_seconds=step)
                _keep(_inputs_cache, inputs_key, inputs, INPUTS_CACHE_MAX)
        result = analyze(inputs, lag_steps=lag_steps)
        _keep(_results_cache, result_key, result, RESULTS_CACHE_MAX)
    return result


def _cached(cache: OrderedDict, key: tuple, name: str | None):
    """Return the value kept under key (now the newest), or None; count the hit or miss under `name`."""
    with _cache_lock:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        if name is not None:
            cache_counts[f"{name}_{'hits' if value is not None else 'misses'}"] += 1
        return value


def _keep(cache: OrderedDict, key: tuple, value, most: int) -> None:
    """Keep value under key, dropping the least recently used entries beyond `most`."""
    with _cache_lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > most:
            cache.popitem(last=False)


def _key_lock(key: tuple) -> threading.Lock:
    """Return the lock of one cache key (made on first use; at most a few hundred keys ever live)."""
    with _cache_lock:
        if len(_key_locks) > 512:
            for stale in [k for k, lock in _key_locks.items() if not lock.locked()]:
                del _key_locks[stale]
        return _key_locks.setdefault(key, threading.Lock())


def clear_cache() -> None:
    """Forget every kept analysis and its inputs (benchmarks time cold callbacks with it)."""
    with _cache_lock:
        _inputs_cache.clear()
        _results_cache.clear()


