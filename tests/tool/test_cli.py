"""The ``batchsem`` command line: bench, list, show, starve-test, and main()'s error handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _cli import assert_one_line_error, invoke, run_main

from batchsem.bench import loops, results
from batchsem.bench.impls import BUILTIN
from batchsem.workloads import REGISTRY

LOOPS = loops.available()
TINY = ["--duration", "0.05", "--repeat", "1", "--tasks", "4", "--permits", "4"]
MAIN = "from batchsem.cli import main; main()"


# ------------------------------------------------------------------- bench


def test_bench_writes_result_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "run.json"
    result = invoke("bench", "contended", "starvation", "--impl", "batchsem,asyncio",
                    "--loop", "asyncio", *TINY, "-o", str(out))
    assert result.exit_code == 0, result.output
    run = results.load(out).to_json()
    assert run["kind"] == "bench"
    assert run["interrupted"] is False
    keys = [(c["workload"], c["impl"], c["loop"]) for c in run["cases"]]
    assert keys == [
        ("contended", "batchsem", "asyncio"),
        ("contended", "asyncio", "asyncio"),
        ("contended", "null", "asyncio"),  # the ceiling row
        ("starvation", "batchsem", "asyncio"),
        ("starvation", "asyncio", "asyncio"),
    ]
    assert all(c["status"] == "ok" for c in run["cases"])
    assert run["settings"]["permits"] == 4 and run["settings"]["tasks"] == 4
    # the tables go to stdout, the file name to stderr
    assert "contended" in result.stdout and "starvation" in result.stdout
    assert "p99" in result.stdout and "overtakes" in result.stdout
    assert "strict FIFO held" in result.stdout
    assert "saved" in result.stderr and "run.json" in result.stderr


def test_bench_no_ceiling_and_output_directory(tmp_path: Path) -> None:
    result = invoke("bench", "contended", "--impl", "batchsem", "--loop", "asyncio", *TINY,
                    "--no-ceiling", "-o", str(tmp_path) + os.sep)
    assert result.exit_code == 0, result.output
    [path] = tmp_path.glob("*-bench-contended.json")
    assert [c["impl"] for c in results.load(path).to_json()["cases"]] == ["batchsem"]


def test_bench_json_prints_only_the_document(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = invoke("bench", "uncontended", "--impl", "batchsem", "--loop", "asyncio",
                    *TINY, "--no-ceiling", "--json", "-o", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "batchsem.run/1"
    assert [c["workload"] for c in doc["cases"]] == ["uncontended"]
    assert doc == results.load(out).to_json()


def test_bench_params_and_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    out = tmp_path / "run.json"
    result = invoke("bench", "batch-mix", "--impl", "batchsem", "--loop", "asyncio", *TINY,
                    "--no-ceiling", "--param", "sizes=1:1,P:1", "--param", "hold=0",
                    "--trace", str(trace), "-o", str(out))
    assert result.exit_code == 0, result.output
    [case] = results.load(out).to_json()["cases"]
    assert case["params"]["sizes"] == "1:1,P:1"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events
    assert {"acquire", "release"} <= {e["event"] for e in events}
    assert all(e["workload"] == "batch-mix" and e["loop"] == "asyncio" for e in events)


def test_bench_exits_1_when_an_invariant_is_violated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_unlimited.py").write_text(
        "class Unlimited:\n"
        "    def __init__(self, permits): pass\n"
        "    async def acquire(self, n): return None\n"
        "    def release(self, n, handle): return None\n"
        "    def available(self): return None\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run.json"
    # 0.25 s: only grants can break capacity_respected, and a preemption on a loaded
    # machine can outlast a 0.05 s repeat
    result = invoke("bench", "contended", "--impl", "cli_unlimited:Unlimited", "--loop",
                    "asyncio", "--duration", "0.25", "--repeat", "1", "--tasks", "8",
                    "--permits", "2", "--no-ceiling", "-o", str(out))
    assert result.exit_code == 1
    assert "FAILED" in result.stdout and "capacity_respected" in result.stdout
    assert "invariant violated" in result.stderr
    [case] = results.load(out).to_json()["cases"]  # saved all the same
    assert case["status"] == "failed"


BENCH_BAD_INPUTS = [
    (["nope"], "unknown workload 'nope'"),
    (["contended", "--impl", "nope"], "unknown implementation 'nope'"),
    (["contended", "--param", "hold"], "expected key=value"),
    (["contended", "--param", "=1"], "expected key=value"),
    (["contended", "--param", "nokey=1"], "--param nokey"),
    (["contended", "--param", "hold=abc"], "expected float"),
    (["contended", "--permits", "0"], "--permits must be >= 1"),
    (["contended", "--tasks", "0"], "--tasks must be >= 1"),
    (["contended", "--duration", "nan"], "--duration"),
    (["contended", "--rate", "inf"], "--rate"),
    (["starvation", "--rate", "100"], "open-loop"),
    (["starvation", "--param", "batch=9"], "exceeds --permits 8"),
    (["batch-mix", "--param", "sizes=9:1"], "outside 1..8"),
    (["contended", "--loop", "nope"], "unknown loop 'nope'"),
    (["contended", "-o", "/dev/null/x"], "cannot create"),
    (["contended", "--tasks", "abc"], "'abc' is not a valid integer"),
    (["contended", "--no-such-option"], "No such option"),
    # bounds are estimated before anything is allocated
    (["contended", "--tasks", "1000000000"], "GiB per repeat"),
    (["cancel-storm", "--param", "waiters=100000000"], "GiB per repeat"),
    (["threads", "--param", "threads=100000"], "must be <= 256"),
    # a factory that is not a limiter is a usage error, not a failed case
    (["contended", "--impl", "os:getcwd"], "os:getcwd(8) raised TypeError"),
    # --micro takes only what it uses
    (["contended", "--micro"], "does not take WORKLOADS"),
    (["--micro", "--repeat", "3", "--json"], "does not take --repeat, --json"),
    (["contended", "--rigorous"], "use them with --micro"),
]


def test_bench_output_under_a_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = invoke("bench", "contended", *TINY, "-o", str(tmp_path / "file" / "run.json"))
    assert result.exit_code == 2
    assert result.stderr.startswith("batchsem: error: cannot create")


def test_unknown_command_and_version(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "nosuchcommand")
    assert_one_line_error(code, err, "nosuchcommand")
    code, out, _ = run_main(monkeypatch, capsys, "--version")
    assert code == 0 and "batchsem" in out


def test_bad_input_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", MAIN, "bench", "contended", "--param", "hold=nan"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("batchsem: error: --param hold=nan")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_quick_bench_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", MAIN, "bench", "--quick", "contended", "uncontended",
         "--impl", "batchsem", "--loop", "asyncio", "--duration", "0.05", "--repeat", "1",
         "--tasks", "4", "--permits", "4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    [path] = (tmp_path / "results").glob("*.json")
    assert path.name.endswith("-bench-contended-uncontended.json")
    run = results.load(path).to_json()
    assert {c["workload"] for c in run["cases"]} == {"contended", "uncontended"}
    assert run["settings"]["duration_s"] == 0.05
    assert run["command"][:3] == ["batchsem", "bench", "--quick"]
    assert "contended" in proc.stdout and "uncontended" in proc.stdout
    assert "acq/s" in proc.stdout and "p99.9" in proc.stdout
    assert "saved results" in proc.stderr
    assert "Traceback" not in proc.stderr


# -------------------------------------------------------------------- list


def test_list_mentions_every_workload_impl_and_loop() -> None:
    result = invoke("list")
    assert result.exit_code == 0
    for name in (*REGISTRY, *BUILTIN, *loops.LOOPS):
        assert name in result.stdout
    assert "module:attr" in result.stdout
    for p in REGISTRY["cancel-storm"].params:
        assert p.name in result.stdout


# -------------------------------------------------------------------- show


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("show") / "run.json"
    # 0.5 s repeats, not TINY's 0.05 s: every case that runs must be granted something for
    # its histogram, and on a loaded machine a preemption can outlast a 0.05 s repeat.
    result = invoke("bench", "contended", "threads", "--impl", "batchsem,asyncio", "--loop",
                    "asyncio", "--duration", "0.5", "--repeat", "1", "--tasks", "4", "--permits",
                    "4", "--no-ceiling", "-o", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_show_prints_tables_and_histograms(saved_run: Path) -> None:
    result = invoke("show", str(saved_run))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "contended" in out and "threads" in out
    assert "unsupported" in out  # asyncio on threads
    assert "created" in out and "python" in out  # the environment table
    assert "contended · batchsem · asyncio: wait latency" in out
    assert "█" in out  # histogram bars
    # one histogram per case that ran (3 of the 4)
    assert out.count("wait latency") == 3
    result = invoke("show", str(saved_run), "--no-histograms")
    assert result.exit_code == 0
    assert "wait latency" not in result.stdout
    assert "contended" in result.stdout


def test_show_bad_files_exit_2(
    tmp_path: Path,
    saved_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "show", str(tmp_path / "missing.json"))
    assert_one_line_error(code, err, "no such file")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema": "batchsem.run/1", "cases": [', encoding="utf-8")
    code, _, err = run_main(monkeypatch, capsys, "show", str(corrupt))
    assert_one_line_error(code, err, "not valid JSON")
    other = tmp_path / "other.json"
    other.write_text('{"schema": "batchsem.run/2", "cases": []}', encoding="utf-8")
    code, _, err = run_main(monkeypatch, capsys, "show", str(other))
    assert_one_line_error(code, err, "batchsem.run/2")
    run = json.loads(saved_run.read_text())
    run["cases"][0]["histogram"]["total"] = "not-a-histogram"
    broken = tmp_path / "broken-histogram.json"
    broken.write_text(json.dumps(run), encoding="utf-8")
    code, _, err = run_main(monkeypatch, capsys, "show", str(broken))
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("batchsem: error:")
    assert "corrupt histogram" in err and "Traceback" not in err


# ------------------------------------------------------------- starve-test


def stolen_s(case: dict[str, Any]) -> float:
    """Seconds other processes held the CPU while the case's timed period wanted it
    (the run-queue delay its windows measured; 0 where the platform does not report it)."""
    return sum(sum(r["windows"]["stolen_s"]) for r in case["repeats"] if r["windows"])


def fair_in_time(case: dict[str, Any]) -> bool:
    """The large request was served, and within the deadline once the CPU time other
    processes took from the run is added: a fair semaphore is not judged on the machine's
    load (a starving one waits the whole run, far beyond any measured theft)."""
    v = case["verdict"]
    return v["large_completed"] > 0 and v["longest_wait_s"] <= v["deadline_s"] + stolen_s(case)


def test_starve_test_names_the_starving_impl(tmp_path: Path) -> None:
    out = tmp_path / "starve.json"
    result = invoke("starve-test", "--impl", "batchsem,condition", "--duration", "1.0",
                    "--small-tasks", "16", "--permits", "4", "-o", str(out))
    assert result.exit_code == 1, result.output
    run = results.load(out).to_json()
    assert run["kind"] == "starve-test"
    cases = {(c["impl"], c["loop"]): c for c in run["cases"]}
    assert set(cases) == {(i, lp) for i in ("batchsem", "condition") for lp in LOOPS}
    for loop in LOOPS:
        condition, batchsem = cases["condition", loop], cases["batchsem", loop]
        assert f"condition on {loop} STARVES" in result.stdout
        assert condition["verdict"]["starved"] is True
        assert condition["verdict"]["reasons"]
        assert condition["verdict"]["large_completed"] == 0
        # the printed findings match the verdicts in the file
        starved = batchsem["verdict"]["starved"]
        assert (f"batchsem on {loop} STARVES" in result.stdout) is starved, result.stdout
        assert not starved or fair_in_time(batchsem), batchsem["verdict"]
        assert batchsem["verdict"]["large_completed"] > 0
        assert batchsem["verdict"]["max_overtakes"] == 0


def test_starve_test_batchsem_passes(tmp_path: Path) -> None:
    out = tmp_path / "starve.json"
    result = invoke("starve-test", "--duration", "0.5", "--small-tasks", "8", "--permits",
                    "4", "--json", "-o", str(out))
    doc = json.loads(result.stdout)
    assert doc["settings"]["deadline_derived"] is True
    assert doc["settings"]["batch"] == 4
    assert [c["impl"] for c in doc["cases"]] == ["batchsem"] * len(LOOPS)
    starved = [c for c in doc["cases"] if c["verdict"]["starved"]]
    assert result.exit_code == (1 if starved else 0), result.output
    assert all(fair_in_time(c) for c in starved), [c["verdict"] for c in starved]


STARVE_BAD_INPUTS = [
    (["--batch", "9"], "--batch 9 exceeds --permits 8"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--permits", "0"], "--permits must be >= 1"),
    (["--small-tasks", "0"], "--small-tasks must be >= 1"),
    (["--hold", "-1"], "--hold must be >= 0"),
    (["--hold", "nan"], "--hold must be >= 0"),
    (["--deadline", "0"], "--deadline must be > 0"),
    (["--duration", "0"], "--duration"),
    (["--impl", "nope"], "unknown implementation 'nope'"),
    (["--loop", "nope"], "unknown loop 'nope'"),
    (["--permits", "x"], "'x' is not a valid integer"),
]


@pytest.mark.parametrize(
    ("command", "args", "fragment"),
    [("bench", *case) for case in BENCH_BAD_INPUTS]
    + [("starve-test", *case) for case in STARVE_BAD_INPUTS],
)
def test_bad_input_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
    args: list[str],
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, command, *args)
    assert_one_line_error(code, err, fragment)
    assert out == ""
    assert not (tmp_path / "results").exists()  # nothing was measured or saved
