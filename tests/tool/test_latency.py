"""Tests for batchsem.bench.latency (LatencyRecorder on HdrHistogram)."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsem.bench.latency import HIGHEST_NS, LatencyRecorder

# 3 significant digits: HdrHistogram's buckets are at most 1/1024 of their value wide.
REL = 1.0 / 1024


def reference_percentile(sorted_values: list[int], p: float) -> int:
    """HdrHistogram's definition: the value of rank max(1, round(p/100 * n)) (1-based)."""
    rank = max(1, int(p / 100 * len(sorted_values) + 0.5))
    return sorted_values[rank - 1]


def assert_close_ns(reported_us: float, exact_ns: int) -> None:
    # Reported as the highest value of the exact value's bucket: never below it, and
    # above it by at most the bucket width.
    reported_ns = reported_us * 1000.0
    assert exact_ns - 1e-6 <= reported_ns <= exact_ns * (1 + REL) + 1 + 1e-6


def one_by_one(values: list[int]) -> HdrHistogram:
    h = HdrHistogram(1, HIGHEST_NS, 3)
    for v in values:
        h.record_value(min(v, HIGHEST_NS))
    return h


def same_histogram(a: HdrHistogram, b: HdrHistogram) -> bool:
    return (
        a.get_total_count() == b.get_total_count()
        and a.get_max_value() == b.get_max_value()
        and all(a.get_count_at_index(i) == b.get_count_at_index(i) for i in range(a.counts_len))
    )


def lognormal_ns(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.lognormvariate(11.0, 1.5)) for _ in range(n)]  # median ~60 µs


def test_percentiles_match_sorted_reference() -> None:
    values = lognormal_ns(50_000)
    rec = LatencyRecorder()
    rec.record_ns(values)
    s = rec.summary_us()
    ordered = sorted(values)
    for key, p in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9)]:
        assert_close_ns(s[key], reference_percentile(ordered, p))
        assert_close_ns(rec.value_at_percentile_us(p), reference_percentile(ordered, p))
    assert_close_ns(s["max"], ordered[-1])
    assert s["mean"] == pytest.approx(sum(values) / len(values) / 1000.0, rel=REL)
    assert s["count"] == len(values) == rec.count
    assert rec.clamped == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, HIGHEST_NS), min_size=1, max_size=300),
    st.sampled_from([50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentiles_property(values: list[int], p: float) -> None:
    rec = LatencyRecorder()
    rec.record_ns(values)
    assert_close_ns(rec.value_at_percentile_us(p), reference_percentile(sorted(values), p))


@settings(max_examples=300)
@given(st.integers(0, HIGHEST_NS))
def test_bucket_floor_matches_hdrhistogram(v: int) -> None:
    rec = LatencyRecorder()
    h = HdrHistogram(1, HIGHEST_NS, 3)
    floor = rec.bucket_floor_ns(v)
    assert floor == h.get_lowest_equivalent_value(v)
    assert h.values_are_equivalent(floor, v)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2 * HIGHEST_NS), max_size=200))
def test_fast_recording_equals_one_by_one(values: list[int]) -> None:
    rec = LatencyRecorder()
    rec.record_ns(values)
    assert same_histogram(rec._hist, one_by_one(values))
    assert rec.clamped == sum(1 for v in values if v > HIGHEST_NS)
    by_counts = LatencyRecorder()
    by_counts.record_counts(Counter(values))
    assert same_histogram(by_counts._hist, rec._hist)
    assert by_counts.clamped == rec.clamped


def test_edge_values_and_clamping() -> None:
    rec = LatencyRecorder()
    rec.record_ns([0, 1, 2047, 2048, 2049, HIGHEST_NS, HIGHEST_NS + 1, 10**15])
    assert rec.count == 8 and rec.clamped == 2
    assert same_histogram(rec._hist, one_by_one([0, 1, 2047, 2048, 2049] + [HIGHEST_NS] * 3))
    assert rec.summary_us()["max"] == pytest.approx(HIGHEST_NS / 1000.0, rel=REL)


def test_invalid_values_record_nothing() -> None:
    rec = LatencyRecorder()
    rec.record_ns([5, 6])
    with pytest.raises(ValueError):
        rec.record_ns([7, -1, 8])
    with pytest.raises(ValueError):
        rec.record_counts({7: 1, -1: 1})
    with pytest.raises(ValueError):
        rec.record_counts({7: -1})
    assert rec.count == 2
    rec.record_counts({9: 0})
    assert rec.count == 2


def test_empty_recorder() -> None:
    rec = LatencyRecorder()
    assert rec.count == 0 and rec.clamped == 0
    s = rec.summary_us()
    assert set(s) == {"p50", "p90", "p99", "p99_9", "max", "mean", "count"}
    assert all(v == 0.0 for v in s.values())
    assert rec.buckets_log() == []
    assert rec.value_at_percentile_us(50) == 0.0
    assert LatencyRecorder.decode(rec.encode()).count == 0


def test_encode_decode_round_trip() -> None:
    values = [*lognormal_ns(20000, seed=3), HIGHEST_NS + 5]
    rec = LatencyRecorder()
    rec.record_ns(values)
    text = rec.encode()
    assert isinstance(text, str) and text.isascii()
    back = LatencyRecorder.decode(text)
    got, want = back.summary_us(), rec.summary_us()
    # The exact sum behind "mean" is not part of the format: after decoding the
    # mean comes from bucket midpoints, within the histogram's precision.
    assert got.pop("mean") == pytest.approx(want.pop("mean"), rel=1e-3)
    assert got == want
    assert same_histogram(back._hist, rec._hist)
    assert back.clamped == 0  # not part of the format
    # A decoded recorder keeps working.
    back.record_ns([1234])
    assert back.count == rec.count + 1
    back.add(rec)
    assert back.count == 2 * rec.count + 1


def test_decode_other_settings_rebuckets() -> None:
    other = HdrHistogram(1, 10**6, 2)  # e.g. microseconds at 2 significant digits
    for v in (10, 500, 999_000):
        other.record_value(v)
    encoded = other.encode()
    rec = LatencyRecorder.decode(encoded.decode("ascii"))
    assert rec.count == 3
    assert rec.summary_us()["max"] == pytest.approx(999.0, rel=0.01)


def test_add_and_merged() -> None:
    a_vals, b_vals = lognormal_ns(5_000, seed=1), lognormal_ns(7_000, seed=2)
    a, b, both = LatencyRecorder(), LatencyRecorder(), LatencyRecorder()
    a.record_ns(a_vals)
    b.record_ns([*b_vals, HIGHEST_NS * 2])
    both.record_ns(a_vals + b_vals + [HIGHEST_NS * 2])
    merged = LatencyRecorder.merged([a, b])
    a.add(b)
    for r in (a, merged):
        assert r.count == both.count and r.clamped == both.clamped == 1
        assert r.summary_us() == both.summary_us()
        assert same_histogram(r._hist, both._hist)
    assert b.count == 7_001  # unchanged
    assert LatencyRecorder.merged([]).count == 0


def test_buckets_log() -> None:
    rec = LatencyRecorder()
    values = [*lognormal_ns(10000, seed=4), 0]
    rec.record_ns(values)
    buckets = rec.buckets_log(12)
    assert len(buckets) == 12
    assert sum(c for _, _, c in buckets) == rec.count
    for (lo, hi, _), (lo2, _, _) in itertools.pairwise(buckets):
        assert lo < hi == pytest.approx(lo2)
    # Log spacing: every bucket spans the same ratio.
    ratios = [hi / lo for lo, hi, _ in buckets]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)
    # The edges cover the data (to the histogram's precision).
    assert buckets[0][0] <= 0.001 + 1e-12  # 0 ns is in the first bucket, edge at 1 ns
    assert buckets[-1][1] * 1000 >= max(values)
    # A value is counted in the bucket whose range holds it (exact for bucket-floor values).
    one = LatencyRecorder()
    one.record_ns([1000, 1000, 8000])
    b = one.buckets_log(3)
    assert [c for _, _, c in b] == [2, 0, 1]
    with pytest.raises(ValueError):
        rec.buckets_log(0)


def test_single_value_buckets() -> None:
    rec = LatencyRecorder()
    rec.record_ns([5_000_000] * 3)
    buckets = rec.buckets_log(4)
    assert sum(c for _, _, c in buckets) == 3 and buckets[0][2] == 3
    assert buckets[0][0] <= 5000.0 <= buckets[-1][1]
