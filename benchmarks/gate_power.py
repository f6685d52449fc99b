"""Measure the regression gate: how often does ``compare --fail-on-regression`` catch a real
10% throughput regression, and how often does it cry wolf on unchanged code?

The limiter under test is this module's :func:`limiter`: the tool's own
``batchsem`` adapter that busy-waits ``GATE_SPIN_NS`` nanoseconds (environment
variable) in every acquire. The spin that costs 10% of ``contended`` throughput is calibrated on
this machine first. Then, at the tool's default settings::

    batchsem bench contended --impl gate_power:limiter -o A.json   # spin = base
    batchsem bench contended --impl gate_power:limiter -o B.json   # spin = base or slower
    batchsem compare A.json B.json --fail-on-regression            # exit 1 = caught

``--power N`` pairs have B slowed by the calibrated spin (caught = exit 1),
``--null N`` pairs run the same code twice (exit 1 = false alarm). The order of
power and null pairs is interleaved so both see the same machine. Every
pair's verdicts and changes go to ``--json``; ``--keep DIR`` keeps the result
files, and ``--recompare DIR`` judges kept pairs again with the compare
installed now (no new runs).

    .venv/bin/python benchmarks/gate_power.py --power 10 --null 20 --json results/gate_power.json

Takes about 15 s per pair on a 2-core machine. Nothing here is imported by the
package; it runs the installed ``batchsem`` command as a user would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPIN_NS = int(os.environ.get("GATE_SPIN_NS", "0"))


class SpinLimiter:
    """The ``batchsem`` limiter plus a fixed busy-wait per acquire (a calibrated slowdown)."""

    def __init__(self, permits: int) -> None:
        from batchsem.bench.impls import BUILTIN

        self._inner = BUILTIN["batchsem"].factory(permits)
        self._spin = SPIN_NS

    async def acquire(self, n: int) -> object:
        if self._spin:
            end = time.perf_counter_ns() + self._spin
            while time.perf_counter_ns() < end:
                pass
        return await self._inner.acquire(n)

    def release(self, n: int, handle: object) -> Any:
        return self._inner.release(n, handle)

    def available(self) -> int | None:
        return self._inner.available()  # type: ignore[no-any-return]

    def waiting(self) -> int:
        waiting = getattr(self._inner, "waiting", None)
        return 0 if waiting is None else int(waiting())


def limiter(permits: int) -> SpinLimiter:
    """batchsem with a GATE_SPIN_NS busy-wait per acquire."""
    return SpinLimiter(permits)


def _batchsem() -> str:
    exe = Path(sys.executable).with_name("batchsem")
    return str(exe) if exe.exists() else (shutil.which("batchsem") or "batchsem")


def bench(out: Path, spin: int, extra: list[str]) -> None:
    env = dict(os.environ, GATE_SPIN_NS=str(spin),
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [_batchsem(), "bench", "contended", "--impl", "gate_power:limiter", "-o", str(out),
           *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench failed ({done.returncode}): {done.stderr.strip()}")


def compare(a: Path, b: Path) -> tuple[int, dict[str, Any]]:
    cmd = [_batchsem(), "compare", str(a), str(b), "--fail-on-regression", "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"compare failed ({done.returncode}): {done.stderr.strip()}")
    return done.returncode, json.loads(done.stdout)


def throughput(path: Path) -> float:
    """What the gate judges, averaged over loops: the limiter's speed-adjusted window
    throughput (``tput/probe``), or for files without the probe its share of the null
    ceiling (``tput/null``)."""
    from batchsem.bench.compare import _median, probe_rounds, relative_samples
    from batchsem.bench.results import load

    run = load(path)
    null = {c.loop: c for c in run.cases if c.impl == "null"}
    values = []
    for c in run.cases:
        if not c.impl.startswith("gate_power"):
            continue
        adjusted = [v for r in probe_rounds(c) for v in r]
        if adjusted:
            values.append(_median(adjusted))
        elif c.loop in null:
            values.append(_median(relative_samples(c, null[c.loop])))
    return sum(values) / len(values)


def calibrate(work: Path, effect: float, rounds: int) -> tuple[int, float]:
    """The spin (ns) that lowers contended throughput by ``effect``; and the measured drop.

    Per grant the loop spends about ``1 / T0`` seconds; a spin ``s`` makes that
    ``1 / T0 + s``, so ``s = effect / (1 - effect) / T0``. Refined once on the
    measured drop; each measurement interleaves base and spun runs.
    """
    quick: list[str] = []

    def drop(spin: int) -> float:
        base, slow = [], []
        for i in range(rounds):
            a, b = work / f"cal-a{spin}-{i}.json", work / f"cal-b{spin}-{i}.json"
            bench(a, 0, quick)
            bench(b, spin, quick)
            base.append(throughput(a))
            slow.append(throughput(b))
        return 1 - sum(slow) / sum(base)

    a = work / "cal-t0.json"
    bench(a, 0, quick)
    run = json.loads(a.read_text())
    rates = [c["repeats"][0]["windows"]["throughput_ops"] for c in run["cases"]
             if c["impl"].startswith("gate_power")]
    t0 = sum(sum(r) / len(r) for r in rates) / len(rates)  # grants per second of own time
    spin = int(effect / (1 - effect) / t0 * 1e9)
    measured = drop(spin)
    for _ in range(2):
        if measured <= 0:
            spin *= 2
        elif abs(measured - effect) > 0.015:
            spin = int(spin * effect / measured)
        else:
            break
        measured = drop(spin)
    return spin, measured


def judge(n: int, total: int, kind: str, a: Path, b: Path) -> dict[str, Any]:
    """Compare one pair as the gate would; print one line; return the pair's record."""
    code, doc = compare(a, b)
    cells = [{"case": r["case"], "metric": r["metric"], "change": r["cells"][1]["change"],
              "p": r["cells"][1]["p_adjusted"], "verdict": r["cells"][1]["verdict"],
              "detectable": r["cells"][1]["detectable"]}
             for r in doc["rows"] if r["primary"]]
    pair = {"kind": kind, "flagged": code == 1, "share_a": throughput(a),
            "share_b": throughput(b), "cells": cells}
    flagged = [f"{c['case']} {c['metric']} {c['change']:+.1%}" for c in cells
               if c["verdict"] == "regressed"]
    print(f"{n + 1:3d}/{total} {kind:5s} exit {code} "
          f"gated metric {pair['share_b'] / pair['share_a'] - 1:+.1%} {'; '.join(flagged)}",
          flush=True)
    return pair


def summarize(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    power = [p["flagged"] for p in pairs if p["kind"] == "power"]
    null = [p["flagged"] for p in pairs if p["kind"] == "null"]
    drops = sorted(1 - p["share_b"] / p["share_a"] for p in pairs if p["kind"] == "power")
    return {
        "caught": f"{sum(power)}/{len(power)}",
        "false_alarms": f"{sum(null)}/{len(null)}",
        "median_drop_in_power_pairs": drops[len(drops) // 2] if drops else None,
        "cpu_count": os.cpu_count(),
        "loadavg_end": os.getloadavg(),
    }


def recompare(directory: Path, out: Path | None) -> None:
    """Judge the kept pairs NNN-KIND-A.json / NNN-KIND-B.json of an earlier run again."""
    names = sorted(directory.glob("[0-9][0-9][0-9]-*-A.json"))
    pairs = []
    for n, a in enumerate(names):
        b = a.with_name(a.name[:-6] + "B.json")
        if b.exists():
            pairs.append(judge(n, len(names), a.name.split("-")[1], a, b))
    summary = summarize(pairs)
    print(json.dumps(summary))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"summary": summary, "pairs": pairs}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--power", type=int, default=10, help="pairs with a real regression")
    ap.add_argument("--null", type=int, default=20, help="pairs of unchanged code")
    ap.add_argument("--effect", type=float, default=0.10, help="the regression to catch")
    ap.add_argument("--spin", type=int, default=None, help="skip calibration: spin ns")
    ap.add_argument("--calibration-rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write every pair here")
    ap.add_argument("--keep", type=Path, default=None, help="keep the result files here")
    ap.add_argument("--recompare", type=Path, default=None, metavar="DIR",
                    help="no new runs: judge the pairs kept in DIR with this compare")
    args = ap.parse_args()
    if args.recompare is not None:
        recompare(args.recompare, args.json)
        return

    work = Path(tempfile.mkdtemp(prefix="gate-power-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if args.spin is None:
        spin, cal = calibrate(work, args.effect, args.calibration_rounds)
        measured: float | None = cal
        print(f"calibrated: spin {spin} ns per acquire costs {cal:.1%} of contended "
              "throughput", flush=True)
    else:
        spin, measured = args.spin, None
    kinds = ["power"] * args.power + ["null"] * args.null
    # interleave: power and null pairs alternate in proportion
    order = sorted(range(len(kinds)), key=lambda i: (
        (i if i < args.power else i - args.power) / max(1, kinds.count(kinds[i])), kinds[i]))
    pairs: list[dict[str, Any]] = []
    for n, i in enumerate(order):
        kind = kinds[i]
        a, b = work / f"{n:03d}-{kind}-A.json", work / f"{n:03d}-{kind}-B.json"
        bench(a, 0, [])
        bench(b, spin if kind == "power" else 0, [])
        pairs.append(judge(n, len(kinds), kind, a, b))
    summary = {"spin_ns": spin, "calibrated_drop": measured, **summarize(pairs),
               "minutes": round((time.time() - started) / 60, 1)}
    print(json.dumps(summary))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "pairs": pairs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
