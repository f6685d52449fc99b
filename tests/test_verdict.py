"""The one verdict rule (batchsem.bench.verdict): tests, MDE, adjustment, decision."""

from __future__ import annotations

import random

import pytest

from batchsem.bench.stats import bh_adjust
from batchsem.bench.verdict import decide, mann_whitney_p, measure, measure_robust, rounds_agree


def test_mann_whitney_matches_r() -> None:
    # R: wilcox.test(1:5, 6:10, exact = FALSE)$p.value == 0.01219...
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(0.012185, abs=1e-5)
    # with ties, by hand: ranks of a = 1, 3, 3, 5.5, so U = 2.5 against a mean of 8;
    # var = 16/12 * (9 - 36/56) = 11.14; z = (5.5 - 0.5) / 3.338 = 1.498; p = 0.1342
    assert mann_whitney_p([1, 2, 2, 3], [2, 3, 4, 4]) == pytest.approx(0.1342, abs=1e-3)
    assert mann_whitney_p([1.0] * 5, [1.0] * 5) == 1.0


def test_bh_matches_r() -> None:
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH")
    assert bh_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert bh_adjust([]) == []
    with pytest.raises(ValueError):
        bh_adjust([1.5])


def test_decide() -> None:
    kw = {"threshold": 0.05, "higher_is_better": True}
    assert decide(-0.10, 0.01, tested=True, **kw) == "regressed"
    assert decide(0.10, 0.01, tested=True, **kw) == "improved"
    assert decide(-0.04, 0.0001, tested=True, **kw) == "no change"  # within the threshold
    assert decide(-0.10, 0.2, tested=True, **kw) == "no change"  # within the noise
    assert decide(-0.10, None, tested=False, **kw) == "regressed"  # untested: threshold only
    assert decide(None, None, tested=False, **kw) == "n/a"
    assert decide(0.10, 0.01, tested=True, threshold=0.05, higher_is_better=False) == "regressed"


@pytest.mark.parametrize("robust", [False, True])
def test_mde_is_the_change_found_four_times_in_five(robust: bool) -> None:
    """Samples whose true change equals the (average) MDE are flagged about 80% of the time."""
    rng = random.Random(7)
    n, sd, trials = 30, 0.05, 300
    how = measure_robust if robust else measure
    mdes = []
    for _ in range(trials):
        m = how([rng.gauss(1, sd) for _ in range(n)], [rng.gauss(1, sd) for _ in range(n)])
        assert m.mde is not None
        mdes.append(m.mde)
    mde = sum(mdes) / trials
    assert 0.03 < mde < 0.05
    hits = 0
    for _ in range(trials):
        m = how([rng.gauss(1, sd) for _ in range(n)], [rng.gauss(1 - mde, sd) for _ in range(n)])
        hits += m.p_value is not None and m.p_value < 0.05
    assert 0.7 < hits / trials < 0.9


def test_robust_measure_ignores_a_stalled_window() -> None:
    base = [100.0 + i % 3 for i in range(30)]
    new = list(base)
    new[5] = 5.0  # one window in which the machine stalled
    m = measure_robust(base, new)
    assert abs(m.change) < 0.01 and m.p_value is not None and m.p_value > 0.5
    assert measure(base, new).change < -0.02  # the mean moves


def test_rounds_agree_needs_the_change_in_nearly_every_round() -> None:
    base = [[1.0, 1.01, 0.99]] * 6
    slower = [[0.9, 0.91, 0.89]] * 6
    assert rounds_agree(base, slower, -0.1, 0.05)
    # a burst of load slowed two rounds of six: the medians move, the rounds do not agree
    burst = [[1.0, 1.01, 0.99]] * 4 + [[0.6, 0.61, 0.59]] * 2
    assert not rounds_agree(base, burst, -0.1, 0.05)
    # a real change, but the baseline had a slow round of its own: 5 of 6 still agree
    noisy_base = [[1.0, 1.01, 0.99]] * 5 + [[0.88, 0.88, 0.88]]
    assert rounds_agree(noisy_base, slower, -0.1, 0.05)
    assert not rounds_agree(base, slower, +0.1, 0.05)  # the direction matters
    assert not rounds_agree([], slower, -0.1, 0.05)
    assert decide(-0.1, 0.001, tested=True, threshold=0.05, higher_is_better=True,
                  agree=False) == "no change"
