"""Latency distributions on top of HdrHistogram (the ``hdrhistogram`` package).

Values go in as integer **nanoseconds** (e.g. differences of
``time.perf_counter_ns()``) and come out as float **microseconds**.

The histogram tracks 0 ns .. 60 s with 3 significant digits: any reported
value is within 0.1% (more precisely 1/1024) of a value that was recorded in
the same bucket. Values above 60 s are recorded as 60 s and counted in
:attr:`LatencyRecorder.clamped`.

Speed: ``HdrHistogram.record_value`` is pure Python and costs about 2 µs per
call, i.e. ~4 s for 2 million values. :meth:`LatencyRecorder.record_ns`
therefore first rounds every value down to the lowest value of its histogram
bucket (which does not change which bucket it lands in), tallies the rounded
values with a dict, and calls ``record_value(value, count)`` once per distinct
bucket (at most ~27,000 of them). The histogram ends up identical to
recording the values one by one.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping

from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_NS", "LatencyRecorder"]

# Highest trackable value: 60 seconds, in nanoseconds.
HIGHEST_NS = 60 * 10**9
_LOWEST_NS = 1
_SIGNIFICANT_FIGURES = 3

_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


def _new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_NS, HIGHEST_NS, _SIGNIFICANT_FIGURES)


class LatencyRecorder:
    """A latency histogram: record nanoseconds, report microseconds.

    Not thread-safe; merge per-thread recorders with :meth:`add`.
    """

    def __init__(self) -> None:
        self._hist = _new_histogram()
        self._clamped = 0
        # Exact sum of the recorded values (before bucketing, after clamping), so
        # the mean costs nothing: HdrHistogram's get_mean_value walks every bucket
        # in Python (~0.4 s). None after decode(), where only buckets are known.
        self._sum_ns: int | None = 0
        # Values whose bit length is at most this are their own bucket's
        # lowest value; above it the low (bit_length - shift_base) bits are
        # dropped. Derived from the histogram's layout: bucket index =
        # max(bit_length(v), M) - M with M = unit_magnitude +
        # sub_bucket_half_count_magnitude + 1, and the lowest equivalent
        # value clears the low (bucket_index + unit_magnitude) bits.
        h = self._hist
        self._unit_magnitude: int = int(h.unit_magnitude)
        self._shift_base: int = int(h.unit_magnitude + h.sub_bucket_half_count_magnitude + 1)

    # -- recording ---------------------------------------------------------

    def bucket_floor_ns(self, value: int) -> int:
        """The lowest value of the histogram bucket that ``value`` (ns, >= 0) falls in."""
        bucket = value.bit_length() - self._shift_base
        shift = self._unit_magnitude + max(bucket, 0)
        return value >> shift << shift

    def record_ns(self, values: Iterable[int]) -> None:
        """Record latencies given in integer nanoseconds.

        Values above :data:`HIGHEST_NS` (60 s) are recorded as 60 s and counted
        in :attr:`clamped`. Raises ``ValueError`` for a negative value (then
        nothing from this call is recorded). Values must be ``int``; a float raises
        ``AttributeError`` (convert with ``round(seconds * 1e9)`` first).
        Cost: about 0.2-0.3 µs per value plus ~2 µs per distinct bucket hit.
        """
        tally: dict[int, int] = {}
        get = tally.get
        clamped = 0
        top = HIGHEST_NS
        shift_base = self._shift_base
        unit = self._unit_magnitude
        total = 0
        for v in values:
            if v > top:
                v = top
                clamped += 1
            elif v < 0:
                raise ValueError(f"negative latency: {v!r} ns")
            total += v
            s = v.bit_length() - shift_base
            s = s + unit if s > 0 else unit
            if s:
                v = v >> s << s
            tally[v] = get(v, 0) + 1
        self._record_tally(tally, clamped, total)

    def record_counts(self, counts: Mapping[int, int]) -> None:
        """Record ``counts[v]`` occurrences of each latency ``v`` (integer nanoseconds).

        Same as ``record_ns`` over the expanded values (e.g. pass a
        ``collections.Counter`` of waits), including the clamping at 60 s.
        Raises ``ValueError`` for a negative value or count (nothing recorded).
        """
        tally: dict[int, int] = {}
        clamped = 0
        total = 0
        for v, c in counts.items():
            if c < 0:
                raise ValueError(f"negative count {c!r} for {v!r} ns")
            if c == 0:
                continue
            if v > HIGHEST_NS:
                v = HIGHEST_NS
                clamped += c
            elif v < 0:
                raise ValueError(f"negative latency: {v!r} ns")
            total += v * c
            v = self.bucket_floor_ns(v)
            tally[v] = tally.get(v, 0) + c
        self._record_tally(tally, clamped, total)

    def _record_tally(self, tally: Mapping[int, int], clamped: int, total: int) -> None:
        hist = self._hist
        for v, c in tally.items():
            if not hist.record_value(v, c):  # cannot happen: 0 <= v <= HIGHEST_NS
                raise AssertionError(f"HdrHistogram refused value {v}")
        self._clamped += clamped
        if self._sum_ns is not None:
            self._sum_ns += total

    def add(self, other: LatencyRecorder) -> None:
        """Add every value recorded in ``other`` to this recorder (``other`` is unchanged)."""
        self._hist.add(other._hist)
        self._clamped += other._clamped
        if self._sum_ns is not None and other._sum_ns is not None:
            self._sum_ns += other._sum_ns
        else:
            self._sum_ns = None

    @classmethod
    def merged(cls, recorders: Iterable[LatencyRecorder]) -> LatencyRecorder:
        """A new recorder holding the values of all ``recorders`` (which are unchanged)."""
        out = cls()
        for rec in recorders:
            out.add(rec)
        return out

    # -- queries -----------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of values recorded (including clamped ones)."""
        return int(self._hist.get_total_count())

    @property
    def clamped(self) -> int:
        """How many recorded values exceeded 60 s and were recorded as 60 s."""
        return self._clamped

    def summary_us(self) -> dict[str, float]:
        """Percentiles, maximum and mean in microseconds, plus the count.

        Keys: ``p50``, ``p90``, ``p99``, ``p99_9`` (the 99.9th percentile),
        ``max``, ``mean`` and ``count`` (a plain number of values, not µs).
        Percentiles follow HdrHistogram: the value of rank
        ``max(1, round(p/100 * count))`` in sorted order, reported as the
        highest value of its bucket (so at most 0.1% above the exact value);
        ``max`` likewise. ``mean`` is exact for recorded values (HdrHistogram's
        bucket-midpoint mean after :meth:`decode`). All zeros for an empty recorder.
        """
        h = self._hist
        if h.get_total_count() == 0:
            out = dict.fromkeys(_PERCENTILES, 0.0)
            out.update(max=0.0, mean=0.0, count=0.0)
            return out
        by_pct = h.get_percentile_to_value_dict(list(_PERCENTILES.values()))
        out = {name: by_pct[p] / 1000.0 for name, p in _PERCENTILES.items()}
        out["max"] = h.get_max_value() / 1000.0
        if self._sum_ns is not None:
            out["mean"] = self._sum_ns / h.get_total_count() / 1000.0
        else:
            out["mean"] = float(h.get_mean_value()) / 1000.0
        out["count"] = float(h.get_total_count())
        return out

    def value_at_percentile_us(self, percentile: float) -> float:
        """The ``percentile`` (0..100) in microseconds, as in :meth:`summary_us`; 0.0 if empty."""
        if self.count == 0:
            return 0.0
        return float(self._hist.get_value_at_percentile(percentile)) / 1000.0

    def percentile_curve(self, step: float = 0.05) -> list[tuple[float, float]]:
        """The percentile spectrum as ``(percentile, value_us)`` pairs, for plotting.

        Percentiles are ``100 * (1 - 10**-k)`` for ``k = 0, step, 2*step, ...``
        (evenly spaced on a "nines" axis: 90 is one nine, 99.9 three) while
        ``k <= log10(count)``, i.e. until the rank reaches the last value; then
        ``(100.0, max)``. Values follow :meth:`value_at_percentile_us` (rank
        ``max(1, round(p/100 * count))``, highest value of its bucket), found
        in one pass over the buckets. Empty list if nothing was recorded;
        ``ValueError`` if ``step <= 0``.
        """
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step!r}")
        h = self._hist
        total = int(h.get_total_count())
        if total == 0:
            return []
        highs: list[int] = []  # highest value of each non-empty bucket, ascending
        cumulative: list[int] = []  # values at or below it
        running = 0
        # The counts array itself (a ctypes array, zero past what a decoded histogram
        # carried): ~30x faster than get_count_at_index over its ~27,000 slots.
        for index, c in enumerate(list(h.counts)[: h.counts_len]):
            if c:
                running += int(c)
                highs.append(int(h.get_highest_equivalent_value(h.get_value_from_index(index))))
                cumulative.append(running)
        out: list[tuple[float, float]] = []
        top = math.log10(total)
        steps = int(top / step + 1e-9)
        for i in range(steps + 1):
            percentile = 100.0 * (1.0 - 10.0 ** (-i * step))
            rank = max(1, int(percentile / 100.0 * total + 0.5))
            out.append((percentile, highs[bisect.bisect_left(cumulative, rank)] / 1000.0))
        out.append((100.0, highs[-1] / 1000.0))
        return out

    def buckets_log(self, n: int = 20) -> list[tuple[float, float, int]]:
        """Counts in ``n`` log-spaced buckets, for drawing a histogram in a terminal.

        Returns ``n`` tuples ``(lo_us, hi_us, count)``: bucket ``i`` covers
        ``[lo_us, hi_us)`` with edges ``L * (H / L) ** (i / n)``, where ``L`` is
        the lowest value of the smallest recorded value's histogram bucket (at
        least 1 ns) and ``H`` is one past the highest value of the largest
        one's, so the buckets cover every recorded value. Each HdrHistogram
        bucket is placed by its lowest value, so edges are exact only to the
        histogram's 0.1% precision; values of 0 ns go to the first bucket. The
        counts sum to :attr:`count`. Empty list if nothing was recorded.
        Raises ``ValueError`` if ``n < 1``.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        h = self._hist
        if h.get_total_count() == 0:
            return []
        nonzero: list[tuple[int, int]] = []  # (lowest value of the bucket, count)
        for index in range(h.counts_len):
            c = h.get_count_at_index(index)
            if c:
                nonzero.append((int(h.get_value_from_index(index)), int(c)))
        lo = max(1, nonzero[0][0])
        hi = int(h.get_highest_equivalent_value(nonzero[-1][0])) + 1
        log_lo = math.log(lo)
        span = math.log(hi) - log_lo  # > 0 since hi > lowest value >= lo
        counts = [0] * n
        for value, c in nonzero:
            i = int(n * (math.log(value) - log_lo) / span) if value > lo else 0
            counts[min(max(i, 0), n - 1)] += c
        edges = [lo * (hi / lo) ** (i / n) / 1000.0 for i in range(n + 1)]
        edges[0], edges[n] = lo / 1000.0, hi / 1000.0
        return [(edges[i], edges[i + 1], counts[i]) for i in range(n)]

    # -- serialisation -----------------------------------------------------

    def encode(self) -> str:
        """HdrHistogram's standard compressed, base64 encoding (V2 "histoblob") as text.

        Readable by any HdrHistogram implementation. :attr:`clamped` is not
        part of the format and is not preserved.
        """
        encoded = self._hist.encode()
        return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)

    @classmethod
    def decode(cls, s: str) -> LatencyRecorder:
        """Rebuild a recorder from :meth:`encode` output (``clamped`` starts at 0).

        A histoblob written with other settings is re-bucketed into this
        class's layout; values beyond 60 s then raise ``IndexError``.
        """
        decoded = HdrHistogram.decode(s)
        rec = cls()
        if (
            decoded.lowest_trackable_value == _LOWEST_NS
            and decoded.highest_trackable_value == HIGHEST_NS
            and decoded.significant_figures == _SIGNIFICANT_FIGURES
        ):
            rec._hist = decoded
        else:
            rec._hist.add(decoded)
        rec._sum_ns = None
        return rec
