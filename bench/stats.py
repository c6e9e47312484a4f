"""Latency samples: unpacking what the load generator sent, percentiles."""

from __future__ import annotations

import array
import base64
from collections.abc import Iterable


def unpack_latencies(packed: Iterable[str]) -> array.array:
    """Merge the base64 uint32 µs arrays of one or more load generators."""
    values = array.array("I")
    for text in packed:
        if text:
            values.frombytes(base64.b64decode(text))
    return values


def percentile(sorted_values, fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(round(fraction * len(sorted_values) + 0.5)) - 1))
    return float(sorted_values[rank])


def summarize_us(values) -> dict[str, float | None]:
    """p50, p99 and max of µs samples, in milliseconds."""
    ordered: list[int] = sorted(values)
    if not ordered:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(ordered),
        "p50_ms": _rank(ordered, 0.50) / 1000.0,
        "p99_ms": _rank(ordered, 0.99) / 1000.0,
        "max_ms": ordered[-1] / 1000.0,
    }


def _rank(ordered: list[int], fraction: float) -> float:
    """percentile() of a sequence known not to be empty."""
    value = percentile(ordered, fraction)
    assert value is not None
    return value


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline
