"""The pyperf micro-benchmark worker (batchsem.micro) and the pyperf-file comparison helper."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyperf
import pytest
from _cli import assert_one_line_error, run_main

import batchsem
from batchsem import micro
from batchsem.bench.impls import installed
from batchsem.bench.pyperf_compare import compare_pyperf, is_pyperf_file

ROOT = Path(__file__).resolve().parent.parent

# One worker process, two values, no warmup, one loop: pyperf's fastest real run.
FAST = ["-p", "1", "-n", "2", "-w", "0", "-l", "1", "--quiet"]


def _run_micro(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchsem.micro", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------ worker


def test_micro_writes_a_pyperf_file(tmp_path: Path) -> None:
    out = tmp_path / "micro.json"
    proc = _run_micro(*FAST, "--impl", "batchsem,asyncio", "--loop", "asyncio", "-o", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert is_pyperf_file(out)

    suite = pyperf.BenchmarkSuite.load(str(out))
    names = suite.get_benchmark_names()
    expected = [f"{op}[{impl},asyncio]" for op in micro.OPS for impl in ("batchsem", "asyncio")]
    assert names == expected
    assert names == micro.bench_names(["batchsem", "asyncio"], ["asyncio"])
    for bench in suite.get_benchmarks():
        assert bench.get_nvalue() == 2
        assert bench.get_unit() == "second"
        assert bench.get_inner_loops() == micro.INNER_LOOPS
        assert all(0.0 < v < 1e-3 for v in bench.get_values()), bench.get_name()
        metadata = bench.get_metadata()
        assert metadata["batchsem_version"]
        op, _, rest = bench.get_name().partition("[")
        impl = rest.split(",")[0]
        assert metadata["tags"] == [f"op:{op}", f"impl:{impl}", "loop:asyncio"]


def test_micro_rejects_unknown_names() -> None:
    proc = _run_micro("--impl", "nope", "--loop", "asyncio")
    assert proc.returncode == 2
    assert "unknown --impl 'nope'" in proc.stderr
    proc = _run_micro("--impl", "batchsem", "--loop", "tokio")
    assert proc.returncode == 2
    assert "--loop tokio" in proc.stderr


def test_bench_names_skip_unsupported_ops() -> None:
    names = micro.bench_names(["condition"], ["asyncio"])
    assert names == [
        "acquire-release[condition,asyncio]",
        "batch-8[condition,asyncio]",
        "release-wake[condition,asyncio]",
    ]


IMPLS = [
    pytest.param(
        impl,
        marks=pytest.mark.skipif(not installed(impl), reason=f"{impl} is not installed"),
    )
    for impl in micro.IMPLS
]


@pytest.mark.parametrize("impl", IMPLS)
def test_bench_funcs_run_and_leave_no_task_behind(
    impl: str, run: Callable[[Callable[[], Any]], Any]
) -> None:
    """Every benchmark function completes (no deadlock) and can be called again on a loop."""
    funcs = [f for op in micro.OPS if (f := micro.bench_func(op, impl)) is not None]
    assert funcs

    async def main() -> None:
        import asyncio

        for func in funcs:
            await func()
            await func()  # the per-loop state is reused and still in its initial state
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main)


# ----------------------------------------------------------------- compare


def _write_suite(path: Path, benches: dict[str, list[float]]) -> Path:
    suite = pyperf.BenchmarkSuite(
        [
            pyperf.Benchmark(
                [
                    pyperf.Run(
                        values[i : i + 5],
                        metadata={"name": name, "unit": "second", "inner_loops": 1000},
                        collect_metadata=False,
                    )
                    for i in range(0, len(values), 5)
                ]
            )
            for name, values in benches.items()
        ]
    )
    suite.dump(str(path))
    return path


def _sample(rng: random.Random, mean: float, n: int = 30) -> list[float]:
    return [rng.gauss(mean, mean * 0.02) for _ in range(n)]


def test_compare_pyperf_flags_a_real_slowdown(tmp_path: Path) -> None:
    rng = random.Random(42)
    base = _write_suite(
        tmp_path / "base.json",
        {"same": _sample(rng, 1e-6), "slow": _sample(rng, 2e-6), "gone": _sample(rng, 1e-6)},
    )
    new = _write_suite(
        tmp_path / "new.json",
        {"same": _sample(rng, 1e-6), "slow": _sample(rng, 4e-6), "added": _sample(rng, 1e-6)},
    )
    rows = compare_pyperf(base, [new], threshold=0.05)
    by_name = {row["name"]: row for row in rows}
    assert [row["name"] for row in rows] == ["same", "slow", "gone", "added"]

    slow = by_name["slow"]
    assert slow["verdict"] == "slower"
    assert slow["significant"] is True
    assert slow["change"] == pytest.approx(1.0, abs=0.05)
    assert slow["p_value"] < 1e-6
    # Holm over the two tested rows ("same" and "slow"): at most doubled.
    assert slow["p_value"] <= slow["p_adjusted"] <= 2 * slow["p_value"]
    assert slow["base_mean"] == pytest.approx(2e-6, rel=0.02)
    assert slow["new_mean"] == pytest.approx(4e-6, rel=0.02)
    assert slow["file"] == str(new)

    same = by_name["same"]
    assert same["verdict"] == "no change"
    assert same["significant"] is False
    assert abs(same["change"]) < 0.05

    assert by_name["gone"]["verdict"] == "missing in new"
    assert by_name["gone"]["new_mean"] is None
    assert by_name["added"]["verdict"] == "missing in base"
    assert by_name["added"]["base_mean"] is None

    # The other way round the slowdown is a speed-up.
    back = {row["name"]: row for row in compare_pyperf(new, [base], threshold=0.05)}
    assert back["slow"]["verdict"] == "faster"
    assert back["slow"]["change"] == pytest.approx(-0.5, abs=0.03)


def test_compare_pyperf_identical_and_threshold(tmp_path: Path) -> None:
    rng = random.Random(7)
    values = _sample(rng, 1e-6)
    base = _write_suite(tmp_path / "a.json", {"x": values})
    same = _write_suite(tmp_path / "b.json", {"x": list(values)})
    slightly = _write_suite(tmp_path / "c.json", {"x": [v * 1.03 for v in values]})
    rows = compare_pyperf(base, [same, slightly], threshold=0.05)
    assert [row["file"] for row in rows] == [str(same), str(slightly)]
    assert rows[0]["verdict"] == "no change"
    assert rows[0]["change"] == 0.0
    assert rows[0]["p_value"] == pytest.approx(1.0)
    # 3% slower is significant statistically but within the 5% threshold.
    assert rows[1]["p_value"] < 0.05
    assert rows[1]["verdict"] == "no change"
    assert rows[1]["significant"] is False
    # With a 1% threshold it counts.
    assert compare_pyperf(base, [slightly], threshold=0.01)[0]["verdict"] == "slower"


def test_is_pyperf_file(tmp_path: Path) -> None:
    rng = random.Random(1)
    good = _write_suite(tmp_path / "good.json", {"x": _sample(rng, 1e-6, 5)})
    assert is_pyperf_file(good)
    gz = _write_suite(tmp_path / "good.json.gz", {"x": _sample(rng, 1e-6, 5)})
    assert is_pyperf_file(gz)
    other = tmp_path / "run.json"
    other.write_text(json.dumps({"schema": "batchsem.run/1", "cases": []}), encoding="utf-8")
    assert not is_pyperf_file(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n", encoding="utf-8")
    assert not is_pyperf_file(text)
    assert not is_pyperf_file(tmp_path / "missing.json")
    assert not is_pyperf_file(tmp_path)


def test_compare_pyperf_rejects_bad_files(tmp_path: Path) -> None:
    rng = random.Random(3)
    good = _write_suite(tmp_path / "good.json", {"x": _sample(rng, 1e-6, 5)})
    truncated = tmp_path / "truncated.json"
    truncated.write_text(good.read_text(encoding="utf-8")[:40], encoding="utf-8")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"benchmarks": [{"runs": "nope"}], "version": "1.0"}))
    unknown_version = tmp_path / "version.json"
    unknown_version.write_text(json.dumps({"benchmarks": [], "version": "99"}))
    for bad in (truncated, wrong, unknown_version, tmp_path / "missing.json", tmp_path):
        with pytest.raises(ValueError) as info:
            compare_pyperf(good, [bad], threshold=0.05)
        message = str(info.value)
        assert "\n" not in message
        assert str(bad) in message
        with pytest.raises(ValueError):
            compare_pyperf(bad, [good], threshold=0.05)
    with pytest.raises(ValueError, match="threshold"):
        compare_pyperf(good, [good], threshold=-0.1)


def test_micro_measures_both_cores() -> None:
    """``batchsem-py`` drives the Python reference even when the compiled core is active."""
    from batchsem import _semaphore

    assert "batchsem-py" in micro.IMPLS
    assert micro._BATCHSEM_CORES["batchsem-py"] is _semaphore.Semaphore
    assert micro._BATCHSEM_CORES["batchsem"] is batchsem.Semaphore


def test_bench_micro_unknown_impl_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys, "bench", "--micro", "--impl", "nope")
    assert out == ""
    assert_one_line_error(code, err, "unknown --impl 'nope'")
