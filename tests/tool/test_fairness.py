"""Tests for batchsem.bench.fairness (overtakes checked against an O(n^2) brute force)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsem.bench.fairness import (
    OvertakeStats,
    _scan_block,
    overtakes,
    starved,
)


def brute_force(
    req: Sequence[int], grant: Sequence[int | None], abandoned: Sequence[bool] | None = None
) -> list[int]:
    """per_request by definition: j overtakes i iff req_i < req_j and grant_j < grant_i."""
    inf = float("inf")
    n = len(req)
    live = [not (abandoned and abandoned[i]) for i in range(n)]
    g = [inf if x is None else float(x) for x in grant]
    return [
        sum(1 for j in range(n) if live[j] and req[i] < req[j] and g[j] < g[i]) if live[i] else 0
        for i in range(n)
    ]


def check(
    req: Sequence[int], grant: Sequence[int | None], abandoned: Sequence[bool] | None = None
) -> OvertakeStats:
    stats = overtakes(req, grant, abandoned)
    expected = brute_force(req, grant, abandoned)
    assert stats.per_request == expected
    assert stats.total == sum(expected)
    assert stats.max_per_request == max(expected, default=0)
    return stats


def trace(events: str) -> tuple[list[int], list[int | None]]:
    """Build seqs from an event string like "r0 r1 g1 g0": rK = request K issued, gK granted."""
    req: dict[int, int] = {}
    grant: dict[int, int] = {}
    for seq, ev in enumerate(events.split()):
        (req if ev[0] == "r" else grant)[int(ev[1:])] = seq
    n = len(req)
    return [req[i] for i in range(n)], [grant.get(i) for i in range(n)]


# --- hand-made sequences --------------------------------------------------------


def test_empty_and_single() -> None:
    assert overtakes([], []) == OvertakeStats(0, 0, [])
    assert overtakes([5], [None]) == OvertakeStats(0, 0, [0])
    assert overtakes([5], [7]) == OvertakeStats(0, 0, [0])


def test_fifo_is_zero() -> None:
    req, grant = trace("r0 r1 r2 g0 r3 g1 g2 r4 g3 g4")
    assert check(req, grant) == OvertakeStats(0, 0, [0] * 5)
    # Uncontended: each request granted right away.
    req, grant = trace("r0 g0 r1 g1 r2 g2")
    assert check(req, grant).total == 0


def test_one_late_request_granted_first() -> None:
    # r3 arrives last but is granted before the three older waiters.
    req, grant = trace("r0 r1 r2 r3 g3 g0 g1 g2")
    s = check(req, grant)
    assert s == OvertakeStats(total=3, max_per_request=1, per_request=[1, 1, 1, 0])


def test_lifo() -> None:
    req, grant = trace("r0 r1 r2 r3 g3 g2 g1 g0")
    s = check(req, grant)
    assert s.per_request == [3, 2, 1, 0] and s.total == 6 and s.max_per_request == 3


def test_never_granted_is_overtaken_by_all_later_grants() -> None:
    # r0 waits forever; r1..r3 are granted; r4 is still waiting too.
    req, grant = trace("r0 r1 g1 r2 g2 r3 g3 r4")
    s = check(req, grant)
    assert s.per_request == [3, 0, 0, 0, 0]
    # Two never-granted requests do not overtake each other.
    req, grant = trace("r0 r1 r2 g2")
    assert check(req, grant).per_request == [1, 1, 0]


def test_neighbouring_disorder_blocks_interact() -> None:
    # Grant order by request: 6, 4, 7, 5 -- two adjacent swaps, but request 0 is also
    # overtaken by request 3 (5 < 6).
    assert check([0, 1, 2, 3], [6, 4, 7, 5]).per_request == [2, 0, 1, 0]


def test_grant_before_a_request_is_issued_is_not_an_overtake() -> None:
    # r0 granted after r1 was issued and granted -> overtaken; r2 comes after everything.
    req, grant = trace("r0 r1 g1 g0 r2 g2")
    assert check(req, grant).per_request == [1, 0, 0]


def test_abandoned_requests_are_excluded() -> None:
    req, grant = trace("r0 r1 r2 g2 g1")  # r0 timed out and left, never granted
    s = check(req, grant, [True, False, False])
    assert s.per_request == [0, 1, 0] and s.total == 1
    # Without the abandon flag, r0 would count as overtaken twice.
    assert overtakes(req, grant).per_request == [2, 1, 0]
    # An abandoned request neither overtakes nor is overtaken.
    req, grant = [0, 1, 2], [None, 3, None]
    assert overtakes(req, grant, [False, False, True]).per_request == [1, 0, 0]
    assert overtakes(req, grant, [True, False, True]) == OvertakeStats(0, 0, [0, 0, 0])


def test_input_order_does_not_matter() -> None:
    req, grant = trace("r0 r1 r2 r3 g3 g0 r4 g4 g2 g1")
    base = overtakes(req, grant).per_request
    perm = [3, 0, 4, 2, 1]
    s = check([req[i] for i in perm], [grant[i] for i in perm])
    assert s.per_request == [base[i] for i in perm]


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        overtakes([1, 2], [3])
    with pytest.raises(ValueError, match="same length"):
        overtakes([1, 2], [3, 4], [False])
    with pytest.raises(ValueError, match="grant_seq"):
        overtakes([1, 5], [3, 4])  # granted before requested
    with pytest.raises(ValueError, match="same req_seq"):
        overtakes([2, 1, 2], [5, 6, 7])
    with pytest.raises(ValueError, match="abandoned"):
        overtakes([1, 2], [3, 4], [True, False])


def test_large_disorder_block_uses_the_scan() -> None:
    # Request 0 is never granted: every later request overtakes it, and the whole run
    # becomes one disorder block (larger than the pair-by-pair threshold).
    n = 500
    req, grant = trace(" ".join(["r0"] + [f"r{i} g{i}" for i in range(1, n)]))
    s = check(req, grant)
    assert s.per_request[0] == n - 1 and s.total == n - 1


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("disorder", [0.0, 0.02, 0.3, 1.0])
def test_random_limiter_traces(seed: int, disorder: float) -> None:
    """Simulated limiter with 40 tasks and 8 permits; `disorder` picks a random waiter."""
    rng = random.Random(seed)
    req: list[int] = []
    grant: list[int | None] = []
    abandoned: list[bool] = []
    seq = 0
    waiting: list[int] = []
    held: list[int] = []
    idle = 40
    permits = 8
    for _ in range(1200):
        choice = rng.random()
        if idle and choice < 0.45:  # a task issues a request
            idle -= 1
            req.append(seq)
            grant.append(None)
            abandoned.append(False)
            waiting.append(len(req) - 1)
            seq += 1
        elif held and choice < 0.85:  # a holder releases
            held.pop(rng.randrange(len(held)))
            permits += 1
            idle += 1
        elif waiting and choice < 0.9:  # a waiter times out
            i = waiting.pop(rng.randrange(len(waiting)))
            abandoned[i] = True
            idle += 1
        while permits and waiting:
            k = rng.randrange(len(waiting)) if rng.random() < disorder else 0
            i = waiting.pop(k)
            grant[i] = seq
            seq += 1
            permits -= 1
            held.append(i)
    s = check(req, grant, abandoned)
    if disorder == 0.0:
        assert s.total == 0


# --- property-based equivalence with the brute force ----------------------------


@st.composite
def traces(draw: st.DrawFn) -> tuple[list[int], list[int | None], list[bool] | None]:
    n = draw(st.integers(0, 40))
    # Distinct seqs: a random permutation of 2n slots; each request takes two.
    slots = draw(st.permutations(list(range(2 * n))))
    req: list[int] = []
    grant: list[int | None] = []
    abandoned: list[bool] = []
    for i in range(n):
        a, b = sorted(slots[2 * i : 2 * i + 2])
        fate = draw(st.sampled_from(["granted", "granted", "granted", "waiting", "abandoned"]))
        req.append(a)
        grant.append(b if fate == "granted" else None)
        abandoned.append(fate == "abandoned")
    return req, grant, (abandoned if draw(st.booleans()) else None)


@settings(max_examples=400, deadline=None)
@given(traces())
def test_matches_brute_force(t: tuple[list[int], list[int | None], list[bool] | None]) -> None:
    req, grant, abandoned = t
    if abandoned is None:  # without flags the would-be abandoned requests just wait
        check(req, grant)
    else:
        check(req, grant, abandoned)


@st.composite
def mostly_fifo(draw: st.DrawFn) -> tuple[list[int], list[int | None]]:
    """Issue-ordered requests, FIFO grants with random local disorder (blocks of all sizes)."""
    n = draw(st.integers(2, 120))
    window = draw(st.integers(1, 30))
    swaps = draw(st.lists(st.integers(0, 200), max_size=30))
    never = draw(st.sets(st.integers(0, n - 1), max_size=3))
    req = [0] * n
    grant: list[int | None] = [None] * n
    seq = 0
    pending: list[int] = []
    issued = 0
    step = 0
    while issued < n or pending:
        if issued < n and (len(pending) < window or not pending):
            req[issued] = seq
            seq += 1
            pending.append(issued)
            issued += 1
            continue
        k = 0
        if step in swaps and len(pending) > 1:
            k = draw(st.integers(0, len(pending) - 1))
        step += 1
        i = pending.pop(k)
        if i not in never:
            grant[i] = seq
            seq += 1
    return req, grant


@settings(max_examples=300, deadline=None)
@given(mostly_fifo())
def test_mostly_fifo_matches_brute_force(t: tuple[list[int], list[int | None]]) -> None:
    check(*t)


@settings(max_examples=200, deadline=None)
@given(traces())
def test_scan_alone_matches_brute_force(
    t: tuple[list[int], list[int | None], list[bool] | None],
) -> None:
    """The sorted-list scan on the whole run (no block splitting) is exact by itself."""
    req, grant, _ = t
    order = sorted(range(len(req)), key=req.__getitem__)
    rs = [req[i] for i in order]
    gs = [float("inf") if g is None else float(g) for g in (grant[i] for i in order)]
    per = [0] * len(req)
    if order:
        _scan_block(rs, gs, order, 0, len(order) - 1, per)
    assert per == brute_force(req, grant)


# --- starved ---------------------------------------------------


def test_starved() -> None:
    assert starved({}) == 0
    assert starved({"a": 3, "b": 0, "c": 1, "d": 0}) == 2
    assert starved({1: 0, 2: 0}) == 2
    with pytest.raises(ValueError):
        starved({"a": -1})


