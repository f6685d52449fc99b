"""Tests for batchsem.bench.stats.

Reference values and where they come from:

* Student's t critical values: printed two-sided 95% tables (12.706, 4.303,
  3.182, 2.776, 2.571, 2.228 (df 10), 2.086 (20), 2.042 (30), 2.000 (60),
  1.980 (120), 1.960 (inf)); and, independently of the module's continued
  fraction, the closed forms of Abramowitz & Stegun 26.7.3 (odd df) and 26.7.4
  (even df) implemented below, plus Simpson integration of the density for
  fractional df.
* Welch's test: R's ``t.test(extra ~ group, data = sleep)`` on Student's sleep
  data prints "t = -1.8608, df = 17.776, p-value = 0.07939"; the afex package
  documentation (examples.compare.R) reproduces it as Welch t -1.861, df 17.78,
  p 0.07939 and the pooled test as t -1.861, df 18, p 0.07919. t and df are
  also recomputed here with exact rational arithmetic.
* summarize([1, 2, 3, 4, 5]): mean 3, stdev sqrt(2.5) = 1.58114, ci95 =
  2.776445 * sqrt(2.5) / sqrt(5) = 2.776445 * 0.707107 = 1.963243 (by hand).
"""

from __future__ import annotations

import itertools
import math
import statistics
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchsem.bench.stats import (
    Verdict,
    WelchResult,
    compare_samples,
    holm_adjust,
    jain_index,
    student_t_sf,
    summarize,
    t_ppf_975,
    welch_test,
)

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


# --- independent references -------------------------------------------------


def t_sf_closed_form(t: float, nu: int) -> float:
    """P(T > t) for integer nu from A&S 26.7.3/26.7.4 (A(t|nu) = P(|T| <= t), t >= 0)."""
    theta = math.atan(t / math.sqrt(nu))
    c, s = math.cos(theta), math.sin(theta)
    if nu % 2 == 1:
        total, term = 0.0, c
        if nu > 1:
            total = term
            for k in range(1, (nu - 3) // 2 + 1):
                term *= c * c * (2 * k) / (2 * k + 1)
                total += term
        a = 2.0 / math.pi * (theta + s * total) if nu > 1 else 2.0 / math.pi * theta
    else:
        total = term = 1.0
        for k in range(1, (nu - 2) // 2 + 1):
            term *= c * c * (2 * k - 1) / (2 * k)
            total += term
        a = s * total
    return (1.0 - a) / 2.0


def t_sf_simpson(t: float, nu: float, steps: int = 4000) -> float:
    """P(T > t) = 1/2 - integral_0^t pdf, by Simpson's rule (t >= 0)."""
    log_c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_c - (nu + 1) / 2 * math.log1p(x * x / nu))

    h = t / steps
    acc = pdf(0.0) + pdf(t)
    for i in range(1, steps):
        acc += (4 if i % 2 else 2) * pdf(i * h)
    return 0.5 - acc * h / 3


def welch_exact(a: list[float], b: list[float]) -> tuple[float, float]:
    """Welch t and df with exact rational arithmetic (only the final sqrt in floats)."""
    fa, fb = [Fraction(x) for x in a], [Fraction(x) for x in b]
    ma, mb = sum(fa) / len(fa), sum(fb) / len(fb)
    va = sum((x - ma) ** 2 for x in fa) / (len(fa) - 1) / len(fa)
    vb = sum((x - mb) ** 2 for x in fb) / (len(fb) - 1) / len(fb)
    df = (va + vb) ** 2 / (va**2 / (len(fa) - 1) + vb**2 / (len(fb) - 1))
    return float(ma - mb) / math.sqrt(float(va + vb)), float(df)


# --- Student's t ----------------------------------------------------------------


@pytest.mark.parametrize("nu", range(1, 61))
def test_student_t_sf_matches_closed_form(nu: int) -> None:
    for t in [0.0, 0.05, 0.3, 1.0, 1.7, 2.0, 2.5, 3.0, 4.5, 7.0, 12.0, 40.0]:
        ref = t_sf_closed_form(t, nu)
        assert student_t_sf(t, nu) == pytest.approx(ref, abs=1e-12)
        assert student_t_sf(-t, nu) == pytest.approx(1.0 - ref, abs=1e-12)


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5, 7.25, 17.776, 123.4, 5000.5])
def test_student_t_sf_fractional_df_matches_integration(nu: float) -> None:
    for t in [0.2, 1.0, 2.1, 3.5]:
        assert student_t_sf(t, nu) == pytest.approx(t_sf_simpson(t, nu), abs=1e-9)


def test_student_t_sf_special_values() -> None:
    assert student_t_sf(0.0, 3) == 0.5
    assert student_t_sf(math.inf, 3) == 0.0
    assert student_t_sf(-math.inf, 3) == 1.0
    assert math.isnan(student_t_sf(math.nan, 3))
    assert student_t_sf(1e200, 3) == 0.0
    # df = inf is the standard normal.
    assert student_t_sf(1.959963984540054, math.inf) == pytest.approx(0.025, abs=1e-15)
    # Cauchy (df = 1): P(T > 1) = 1/4 exactly.
    assert student_t_sf(1.0, 1) == pytest.approx(0.25, abs=1e-15)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            student_t_sf(1.0, bad)


def test_student_t_sf_keeps_relative_accuracy_in_the_tail() -> None:
    # df = 2 has the closed form P(T > t) = (1 - t / s) / 2 = (s^2 - t^2) / (2 s (s + t))
    # = 1 / (s (s + t))
    # with s = sqrt(t^2 + 2), written without cancellation.
    for t in [10.0, 1e3, 1e6]:
        s = math.sqrt(t * t + 2)
        assert student_t_sf(t, 2) == pytest.approx(1.0 / (s * (s + t)), rel=1e-10)


@pytest.mark.parametrize("nu", [1e6, 5e6, 1e7, 2e7, 1e9, 1e12])
def test_student_t_sf_huge_df_approaches_normal(nu: float) -> None:
    for t in [0.5, 2.0, 4.0]:
        normal = 0.5 * math.erfc(t / math.sqrt(2))
        phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
        # First-order expansion in 1/nu; the next term is O(1/nu^2).
        expected = normal + phi * (t**3 + t) / (4 * nu)
        assert student_t_sf(t, nu) == pytest.approx(expected, abs=1e-11)


@given(
    t=st.floats(-50, 50, allow_nan=False),
    df=st.floats(0.2, 1e8, allow_nan=False),
)
def test_student_t_sf_symmetry_and_range(t: float, df: float) -> None:
    upper = student_t_sf(t, df)
    assert 0.0 <= upper <= 1.0
    assert upper + student_t_sf(-t, df) == pytest.approx(1.0, abs=1e-12)
    assert student_t_sf(t + 0.5, df) <= upper + 1e-15  # decreasing in t


def test_t_ppf_975_printed_table() -> None:
    printed = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 20: 2.086,
               30: 2.042, 60: 2.000, 120: 1.980, 10**9: 1.960}  # fmt: skip
    for df, value in printed.items():
        assert t_ppf_975(df) == pytest.approx(value, abs=5e-4)


@pytest.mark.parametrize("df", [*range(1, 80), 100, 120, 250, 1000, 10**5, 10**7, 10**8])
def test_t_ppf_975_is_the_quantile(df: int) -> None:
    q = t_ppf_975(df)
    # P(T > q) = 0.025, checked against the closed form where it is cheap.
    if df <= 250:
        assert t_sf_closed_form(q, df) == pytest.approx(0.025, abs=1e-12)
    assert student_t_sf(q, df) == pytest.approx(0.025, abs=1e-11)


def test_t_ppf_975_decreases_to_normal_quantile() -> None:
    values = [t_ppf_975(df) for df in range(1, 400)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] > 1.959963984540054
    with pytest.raises(ValueError):
        t_ppf_975(0)


# --- summarize ------------------------------------------------------------------


def test_summarize_known_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["mean"] == 3.0
    assert s["stdev"] == pytest.approx(1.5811388300841898, rel=1e-15)
    assert s["ci95"] == pytest.approx(1.963243, abs=1e-6)
    assert (s["min"], s["max"], s["n"]) == (1.0, 5.0, 5.0)


def test_summarize_matches_statistics_module() -> None:
    xs = [10.3, 9.7, 10.1, 10.4, 9.9, 10.0, 10.2]
    s = summarize(xs)
    assert s["mean"] == pytest.approx(statistics.fmean(xs), rel=1e-15)
    assert s["stdev"] == pytest.approx(statistics.stdev(xs), rel=1e-12)
    assert s["ci95"] == pytest.approx(t_ppf_975(6) * statistics.stdev(xs) / math.sqrt(7))


def test_summarize_small_and_degenerate() -> None:
    one = summarize([4.5])
    assert one == {"mean": 4.5, "stdev": 0.0, "ci95": 0.0, "min": 4.5, "max": 4.5, "n": 1.0}
    same = summarize([0.1, 0.1, 0.1])
    assert same["stdev"] == 0.0 and same["ci95"] == 0.0
    # Two values: t(1) = 12.706; stdev of [1, 3] is sqrt(2); ci = 12.706 * sqrt(2) / sqrt(2).
    assert summarize([1.0, 3.0])["ci95"] == pytest.approx(12.706204736174698)
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, math.nan])


# --- Welch ----------------------------------------------------------------------


def test_welch_sleep_data_matches_r() -> None:
    r = welch_test(SLEEP_1, SLEEP_2)
    assert isinstance(r, WelchResult)
    assert r.t == pytest.approx(-1.8608, abs=5e-5)
    assert r.df == pytest.approx(17.776, abs=5e-4)
    assert r.p_value == pytest.approx(0.07939, abs=5e-6)
    t_ref, df_ref = welch_exact(SLEEP_1, SLEEP_2)
    assert r.t == pytest.approx(t_ref, rel=1e-13)
    assert r.df == pytest.approx(df_ref, rel=1e-13)
    # Equal sample sizes: the pooled t equals Welch's t; R gives p = 0.07919 with df = 18.
    assert 2 * student_t_sf(abs(r.t), 18) == pytest.approx(0.07919, abs=5e-6)


def test_welch_is_antisymmetric() -> None:
    ab, ba = welch_test(SLEEP_1, SLEEP_2), welch_test(SLEEP_2, SLEEP_1)
    assert ab.t == -ba.t and ab.df == ba.df and ab.p_value == ba.p_value


def test_welch_unequal_sizes_and_variances() -> None:
    a = [20.1, 22.4, 19.8, 25.3, 21.0, 18.7]
    b = [30.2, 29.8, 30.5]
    r = welch_test(a, b)
    t_ref, df_ref = welch_exact(a, b)
    assert r.t == pytest.approx(t_ref, rel=1e-13)
    assert r.df == pytest.approx(df_ref, rel=1e-13)
    assert r.p_value == pytest.approx(2 * t_sf_simpson(abs(t_ref), df_ref), abs=1e-9)


def test_welch_zero_variance() -> None:
    assert welch_test([3.0, 3.0], [3.0, 3.0, 3.0]) == WelchResult(0.0, 3.0, 1.0)
    r = welch_test([1.0, 1.0, 1.0], [2.0, 2.0])
    assert r.p_value == 0.0 and r.t == -math.inf and r.df == 3.0
    # Only one side constant: ordinary formulas, df = n - 1 of the other side.
    r = welch_test([1.0, 1.0, 1.0], [2.0, 3.0, 4.0, 5.0])
    assert r.df == pytest.approx(3.0) and 0.0 < r.p_value < 1.0


def test_welch_rejects_small_or_bad_samples() -> None:
    for a, b in [([1.0], [1.0, 2.0]), ([1.0, 2.0], []), ([1.0, math.inf], [1.0, 2.0])]:
        with pytest.raises(ValueError):
            welch_test(a, b)


# --- compare_samples ------------------------------------------------------------

# Five repeats with ~1% noise.
BASE_TIMES = [100.0, 101.2, 99.1, 100.6, 98.9]


def test_compare_finds_real_2x_regression() -> None:
    slower = [200.3, 198.7, 201.5, 199.2, 200.9]
    v = compare_samples(BASE_TIMES, slower, higher_is_better=False)
    assert isinstance(v, Verdict)
    assert v.verdict == "regressed"
    assert v.change == pytest.approx(1.0, abs=0.02)
    assert v.significant is True and v.p_value is not None and v.p_value < 1e-6
    # The same numbers as throughput: halving it is the regression.
    v = compare_samples(slower, BASE_TIMES, higher_is_better=True)
    assert v.verdict == "regressed" and v.change == pytest.approx(-0.5, abs=0.01)
    # ... and the other way round it is an improvement.
    assert compare_samples(BASE_TIMES, slower, higher_is_better=True).verdict == "improved"
    assert compare_samples(slower, BASE_TIMES, higher_is_better=False).verdict == "improved"


def test_compare_ignores_noise_within_threshold() -> None:
    other = [100.8, 99.4, 101.0, 99.7, 100.3]
    v = compare_samples(BASE_TIMES, other, higher_is_better=False)
    assert v.verdict == "no change"
    assert abs(v.change) < 0.05 and v.p_value is not None and v.p_value > 0.05
    assert v.significant is False


def test_compare_small_but_significant_change_is_no_change() -> None:
    # 2% faster with tiny noise: significant, but under the 5% threshold.
    base = [100.0, 100.01, 99.99, 100.02, 99.98]
    new = [x * 0.98 for x in base]
    v = compare_samples(base, new, higher_is_better=False)
    assert v.significant is True and v.verdict == "no change"
    # With a 1% threshold the same data is an improvement.
    assert compare_samples(base, new, higher_is_better=False, threshold=0.01).verdict == "improved"


def test_compare_large_but_noisy_change_is_no_change() -> None:
    base = [50.0, 150.0, 100.0]
    new = [60.0, 250.0, 130.0]  # +47% on average, but the spread is huge
    v = compare_samples(base, new)
    assert v.change > 0.05 and v.significant is False and v.verdict == "no change"


def test_compare_single_samples_use_threshold_only() -> None:
    v = compare_samples([100.0], [120.0], higher_is_better=False)
    assert (v.p_value, v.significant, v.verdict) == (None, None, "regressed")
    assert v.change == pytest.approx(0.2)
    v = compare_samples([100.0, 101.0], [103.0])  # one side single: still not testable
    assert v.p_value is None and v.significant is None and v.verdict == "no change"
    assert compare_samples([100.0], [90.0]).verdict == "regressed"


def test_compare_rejects_bad_input() -> None:
    for base, new in [([], [1.0]), ([1.0], []), ([0.0, 0.0], [1.0, 2.0]), ([-1.0], [1.0])]:
        with pytest.raises(ValueError):
            compare_samples(base, new)
    with pytest.raises(ValueError):
        compare_samples([1.0], [1.0], alpha=0.0)
    with pytest.raises(ValueError):
        compare_samples([1.0], [1.0], threshold=-0.1)


# --- Jain -----------------------------------------------------------------------


def test_jain_hand_made() -> None:
    assert jain_index([3.0, 3.0, 3.0, 3.0]) == 1.0
    assert jain_index([0.1] * 7) == 1.0
    assert jain_index([5.0, 0.0, 0.0, 0.0]) == pytest.approx(1 / 4)
    assert jain_index([1.0] + [0.0] * 9) == pytest.approx(1 / 10)
    assert jain_index([2.0, 2.0, 0.0, 0.0, 0.0]) == pytest.approx(2 / 5)  # k of n -> k/n
    assert jain_index([1.0, 2.0]) == pytest.approx(9 / 10)  # 3^2 / (2 * 5)
    assert jain_index([7.0]) == 1.0


def test_jain_edge_cases() -> None:
    assert jain_index([]) == 1.0
    assert jain_index([0.0, 0.0, 0.0]) == 0.0
    assert jain_index([1e-200, 1e-200]) == 1.0  # no underflow
    assert jain_index([1e200, 1e200, 0.0]) == pytest.approx(2 / 3)  # no overflow
    with pytest.raises(ValueError):
        jain_index([1.0, -1.0])
    with pytest.raises(ValueError):
        jain_index([1.0, math.inf])


@given(st.lists(st.floats(0.0, 1e6), min_size=1, max_size=50))
def test_jain_bounds_and_scale_invariance(xs: list[float]) -> None:
    j = jain_index(xs)
    if max(xs) == 0.0:
        assert j == 0.0
        return
    assert 1.0 / len(xs) - 1e-12 <= j <= 1.0
    assert jain_index([3.0 * x for x in xs]) == pytest.approx(j, rel=1e-12)


def test_compare_judges_the_given_change() -> None:
    # Per-repeat samples say +1%, but the merged value the caller shows moved +40%.
    base = [100.0, 101.0, 99.0, 100.5]
    new = [101.0, 102.0, 100.0, 101.5]
    v = compare_samples(base, new, higher_is_better=False, change=0.4)
    assert v.change == 0.4 and v.p_value is not None
    assert v.verdict == "no change"  # not significant in the samples
    noisy_free = [x * 1.4 for x in base]
    v = compare_samples(base, noisy_free, higher_is_better=False, change=0.4)
    assert v.verdict == "regressed"


# ---------------------------------------------------------------------------
# Holm's adjustment


def test_holm_by_hand() -> None:
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> 0.06 (monotone)
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0]  # capped
    assert holm_adjust([0.02]) == [0.02]  # one test: nothing to adjust
    assert holm_adjust([]) == []
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError):
            holm_adjust([0.1, bad])


def _holm_rejects(ps: list[float], alpha: float) -> set[int]:
    """Holm's step-down procedure as usually stated: reject in order until one fails."""
    out: set[int] = set()
    for rank, i in enumerate(sorted(range(len(ps)), key=lambda i: ps[i])):
        if ps[i] >= alpha / (len(ps) - rank):
            break
        out.add(i)
    return out


@given(st.lists(st.floats(0.0, 1.0), max_size=40), st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_adjusted_values_reject_what_the_procedure_rejects(
    ps: list[float], alpha: float
) -> None:
    adjusted = holm_adjust(ps)
    assert all(a >= p for a, p in zip(adjusted, ps, strict=True))
    assert all(a <= 1.0 for a in adjusted)
    # Scaling by (m - rank) is exact for the tiny p-values hypothesis likes, but a
    # product that lands on alpha may round either way: skip those ties.
    if any(math.isclose(p * k, alpha, rel_tol=1e-9) for p in ps for k in range(1, len(ps) + 1)):
        return
    assert {i for i, a in enumerate(adjusted) if a < alpha} == _holm_rejects(ps, alpha)
