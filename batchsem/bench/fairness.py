"""Order-fairness metrics computed from the sequence numbers the harness records.

The harness draws numbers from one shared, strictly increasing counter: a
request's ``req_seq`` is taken just before it calls ``acquire`` and its
``grant_seq`` right after ``acquire`` returns. All the numbers of one run are
therefore distinct integers, and ``req_seq < grant_seq`` for every granted
request. These functions are pure; they take plain sequences so they can be
fed from memory or from a saved run.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, islice, pairwise
from operator import gt, le, lt
from typing import TypeVar, cast

__all__ = ["OvertakeStats", "overtakes", "starved"]

_K = TypeVar("_K", bound=Hashable)


@dataclass(frozen=True)
class OvertakeStats:
    """Result of :func:`overtakes`.

    * ``total``: number of ordered pairs ``(i, j)`` of non-abandoned requests
      where ``i`` was requested before ``j`` but ``j`` was granted first;
    * ``max_per_request``: the largest number of overtakes suffered by a
      single request (0 when there are none);
    * ``per_request``: for each input request (aligned with the input
      sequences) the number of later requests that were granted before it;
      0 for abandoned requests.
    """

    total: int
    max_per_request: int
    per_request: list[int]


def overtakes(
    req_seqs: Sequence[int],
    grant_seqs: Sequence[int | None],
    abandoned: Sequence[bool] | None = None,
) -> OvertakeStats:
    """Count how often a request was overtaken by a younger one.

    Request ``j`` *overtakes* request ``i`` when ``req_seqs[i] < req_seqs[j]``
    and ``j`` was granted before ``i``. A request that was never granted
    (``grant_seqs[i] is None``, e.g. still waiting when the run ended) counts
    as granted at +infinity, i.e. after everything: it is overtaken by every
    younger request that was granted, and two never-granted requests do not
    overtake each other. In a strictly FIFO limiter the result is 0.

    Abandoned requests (``abandoned[i]`` true: cancelled on purpose by the
    workload, e.g. a timeout) are excluded entirely — they are neither
    overtaken nor overtakers and get 0 in ``per_request``. (We do not know when
    they were abandoned, so we cannot tell which grants happened while they
    were still waiting.) An abandoned request must have ``grant_seqs[i] is
    None``: a request granted before being abandoned cannot exist.

    Preconditions (all sequence numbers distinct) are partly checked:
    ``ValueError`` is raised for sequences of different lengths, two equal
    ``req_seqs``, a ``grant_seq <= req_seq`` or an abandoned request with a
    ``grant_seq``. Other duplicates give unspecified (but finite) results.

    Complexity: a few C-speed passes over the input (about 0.5 s for 2 million
    FIFO requests), plus a sort when ``req_seqs`` is not already increasing
    (cheap when the input is nearly in request order, e.g. listed in grant
    order from a mostly-FIFO run: ~1 s more for 2 million; several seconds if
    it is shuffled), plus O(s log w) Python work for the ``s`` requests that
    lie in "disorder blocks" — stretches of the request order whose grant
    order is not increasing — where ``w`` is the number of requests in flight
    at once. So a FIFO run costs nothing extra and a heavily unfair run of 2
    million requests a few seconds.

    Algorithm: list the grant keys (+inf for never granted) in request order.
    A request outside every disorder block is granted after everything
    requested before it and before everything requested after it, so it is in
    no overtake pair, and pairs in different blocks are never overtakes; each
    block is counted on its own (see ``_disorder_blocks`` and ``_scan_block``).
    """
    n = len(req_seqs)
    if len(grant_seqs) != n or (abandoned is not None and len(abandoned) != n):
        raise ValueError("req_seqs, grant_seqs and abandoned must have the same length")
    per = [0] * n
    if n == 0:
        return OvertakeStats(total=0, max_per_request=0, per_request=per)

    # 1. The non-abandoned requests in request order: `order` (input indices),
    #    `rs` (their req_seqs) and `gs` (their grant_seqs, +inf if never granted).
    order: Sequence[int]
    if abandoned is not None and any(abandoned):
        for i in compress(range(n), abandoned):
            if grant_seqs[i] is not None:
                raise ValueError(f"request {i} is abandoned but has a grant_seq")
        order = [i for i in range(n) if not abandoned[i]]
        rs = [req_seqs[i] for i in order]
    else:
        order = range(n)
        rs = list(req_seqs)
    if not all(map(lt, rs, islice(rs, 1, None))):
        order = sorted(order, key=req_seqs.__getitem__)
        rs = [req_seqs[i] for i in order]
        for a, b in pairwise(order):
            if req_seqs[a] == req_seqs[b]:
                raise ValueError(f"requests {a} and {b} have the same req_seq {req_seqs[a]}")
    m = len(rs)
    if m < 2:
        return OvertakeStats(total=0, max_per_request=0, per_request=per)
    inf = math.inf
    gs: list[float]
    if isinstance(order, range) and None not in grant_seqs:
        gs = cast("list[float]", list(grant_seqs))
    else:
        gs = [inf if g is None else g for g in map(grant_seqs.__getitem__, order)]
    if any(map(le, gs, rs)):
        k = next(k for k in range(m) if gs[k] <= rs[k])
        raise ValueError(f"request {order[k]} has grant_seq {gs[k]} <= req_seq {rs[k]}")

    # 2. Only requests that are overtaken or overtake somebody can contribute.
    #    They all lie in the "disorder blocks" around the descents of gs (see
    #    _disorder_blocks); in a FIFO run there are none, in a mostly-FIFO run
    #    few, and finding the descents runs at C speed.
    descents = list(compress(range(m - 1), map(gt, gs, islice(gs, 1, None))))
    if not descents:
        return OvertakeStats(total=0, max_per_request=0, per_request=per)

    # 3. Count inside each block: pairs in different blocks are never overtakes.
    for a, b in _disorder_blocks(gs, descents):
        if b == a + 1:  # a lone descent: the older request is overtaken once
            per[order[a]] = 1
        elif b - a < _SMALL_BLOCK:
            seg = gs[a : b + 1]
            for p, v in enumerate(seg):
                c = 0
                for x in seg[p + 1 :]:
                    if x < v:
                        c += 1
                per[order[a + p]] = c
        else:
            _scan_block(rs, gs, order, a, b, per)
    return OvertakeStats(total=sum(per), max_per_request=max(per), per_request=per)


# Blocks shorter than this are counted pair by pair (quadratic but cheap).
_SMALL_BLOCK = 24


def _scan_block(
    rs: Sequence[int], gs: Sequence[float], order: Sequence[int], a: int, b: int, per: list[int]
) -> None:
    """Store in ``per[order[k]]`` the overtakes suffered by each position ``k`` in ``[a, b]``,
    counting only overtakers inside ``[a, b]``.

    ``rs``/``gs`` are the request/grant keys in request order. Scan the
    positions in request order keeping the grant keys of the requests in
    flight in a sorted list. Let ``C(x)`` be the number of requests scanned so
    far with a grant key below ``x``. The overtakes suffered by ``i`` equal
    ``C(g_i)`` once no further request can be granted before ``i`` minus
    ``C(g_i)`` when ``i`` is scanned. Both are read off as positions in the
    sorted list: at insertion, and when ``i`` leaves the list because a request
    arrived after ``i``'s grant (every later request is granted after it
    arrives, so after ``i``), or at the end of the scan. O(s log w) for ``s``
    positions and at most ``w`` requests in flight at once.
    """
    wait_g: list[float] = []  # grant keys of the requests in flight, ascending
    wait_i: list[int] = []  # their input indices, aligned with wait_g
    c_insert = per  # reuse: holds C(g_i) at insertion until replaced by the answer
    pruned = 0  # requests that have left wait_g
    for k in range(a, b + 1):
        r = rs[k]
        g = gs[k]
        i = order[k]
        if wait_g and wait_g[0] < r:
            # Everything granted before r is final: later requests are granted after r.
            p = bisect_left(wait_g, r)
            for q in range(p):
                j = wait_i[q]
                per[j] = pruned + q - c_insert[j]
            del wait_g[:p]
            del wait_i[:p]
            pruned += p
        if not wait_g or wait_g[-1] < g:  # granted after everything in flight
            c_insert[i] = pruned + len(wait_g)
            wait_g.append(g)
            wait_i.append(i)
        else:
            pos = bisect_left(wait_g, g)
            c_insert[i] = pruned + pos
            wait_g.insert(pos, g)
            wait_i.insert(pos, i)
    # End of the block: the remaining requests get their final counts. Requests
    # never granted share the key +inf; ties are not overtakes, so they all use
    # the position of the first one.
    first_inf = bisect_left(wait_g, math.inf)
    for q, j in enumerate(wait_i):
        per[j] = pruned + min(q, first_inf) - c_insert[j]


def _disorder_blocks(gs: Sequence[float], descents: Sequence[int]) -> list[tuple[int, int]]:
    """Disjoint intervals ``[a, b]`` (ascending) of positions such that every
    overtake pair lies inside one interval, given the grant keys ``gs`` in
    request order and the positions ``k`` (ascending) where ``gs[k] > gs[k + 1]``.

    Invariants of the result, for each interval with minimum ``lo`` and
    maximum ``hi``: every element before it is <= ``lo`` and the element just
    after it is >= ``hi``. Between intervals ``gs`` has no descent, so it
    increases; hence every element outside the intervals is >= everything
    before it and <= everything after it, and every element of a later
    interval is >= everything in an earlier one: no overtake pair involves an
    outside element or spans two intervals. Each interval is grown from a
    descent: to the left while the maximum of everything before it exceeds
    ``lo`` (merging with the previous interval when that maximum is in it), to
    the right while the next element is below ``hi``. Cost: O(total interval
    length) plus O(1) per descent.
    """
    m = len(gs)
    blocks: list[tuple[int, int, float, float]] = []  # (a, b, lo, hi)
    last = -1  # end of the last interval
    prev_hi = -math.inf  # maximum of gs[: last + 1]
    for k in descents:
        if k <= last:
            continue  # already inside the last interval
        a, b = k, k + 1
        lo, hi = gs[b], gs[k]
        if prev_hi <= lo and (k == 0 or gs[k - 1] <= lo) and (b + 1 == m or gs[b + 1] >= hi):
            blocks.append((a, b, lo, hi))  # fast path: an isolated adjacent swap
            last, prev_hi = b, hi
            continue
        while True:
            changed = False
            while True:
                if prev_hi > lo:  # something in the previous interval is overtaken
                    pa, _, plo, phi = blocks.pop()
                    a, lo, hi = pa, min(lo, plo), max(hi, phi)
                    if blocks:
                        last, prev_hi = blocks[-1][1], blocks[-1][3]
                    else:
                        last, prev_hi = -1, -math.inf
                elif a - 1 > last and gs[a - 1] > lo:  # gs[a-1] is the largest before a
                    a -= 1
                    hi = max(hi, gs[a])
                else:
                    break
                changed = True
            while b + 1 < m and gs[b + 1] < hi:
                b += 1
                lo = min(lo, gs[b])
                changed = True
            if not changed:
                break
        blocks.append((a, b, lo, hi))
        last, prev_hi = b, hi
    return [(a, b) for a, b, _, _ in blocks]


def starved(completions_per_task: Mapping[_K, int]) -> int:
    """Number of tasks that completed nothing (a completion count of 0).

    Keys identify tasks (e.g. names or ids); values are completed operations.
    Raises ``ValueError`` for a negative count.
    """
    count = 0
    for task, done in completions_per_task.items():
        if done < 0:
            raise ValueError(f"task {task!r} has a negative completion count {done}")
        if done == 0:
            count += 1
    return count
