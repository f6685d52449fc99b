"""The tool under hostile limiters, signals, closed pipes, full disks and concurrent saves."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _cli import invoke

from batchsem.bench import results

TESTS = Path(__file__).resolve().parent
MAIN = "from batchsem.cli import main; main()"


def child_env() -> dict[str, str]:
    """This environment, plus the tests directory on the path (for ``_hostile``)."""
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "NO_COLOR": "1", "PYTHONPATH": path}


def batchsem(
    *args: str, cwd: Path, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess[str]:
    env = child_env()
    return subprocess.run([sys.executable, "-c", MAIN, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = child_env()
    return subprocess.Popen([sys.executable, "-c", MAIN, *args], cwd=cwd, text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# ------------------------------------------------------------- hostile limiters


def test_hostile_limiters_fail_their_cases_in_bounded_time(tmp_path: Path) -> None:
    """A limiter that never returns, one that leaks a permit per cancel, one that raises:
    every case fails (exit 1) within seconds, with no stray task tracebacks."""
    t0 = time.monotonic()
    proc = batchsem(
        "bench", "uncontended", "contended", "cancel-storm",
        "--impl", "_hostile:never,_hostile:lossy,_hostile:raising", "--loop", "asyncio",
        "--duration", "0.1", "--repeat", "1", "--tasks", "4", "--permits", "2",
        "--param", "waiters=50", "--no-ceiling", "-o", "run.json", cwd=tmp_path, timeout=90,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "never retrieved" not in proc.stderr
    assert elapsed < 60
    run = results.load(tmp_path / "run.json")
    status = {(c.workload, c.impl): c.status for c in run.cases}
    for impl in ("never", "raising"):
        for workload in ("uncontended", "contended", "cancel-storm"):
            assert status[workload, f"_hostile:{impl}"] == "failed", (workload, impl)
    assert status["cancel-storm", "_hostile:lossy"] == "failed"
    errors = {(c.workload, c.impl): " ".join(c.errors) for c in run.cases}
    assert "no request made progress" in errors["uncontended", "_hostile:never"]
    assert "hostile limiter refuses" in errors["contended", "_hostile:raising"]


def test_long_holds_are_not_a_stall(tmp_path: Path) -> None:
    # The stall detector was a fixed 0.5 s: holding for 0.6 s read as a deadlock.
    result = invoke("bench", "contended", "--impl", "batchsem", "--loop", "asyncio",
                    "--param", "hold=0.6", "--duration", "0.05", "--repeat", "1",
                    "--tasks", "4", "--permits", "2", "--no-ceiling",
                    "-o", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    [case] = results.load(tmp_path / "r.json").cases
    assert case.status == "ok" and not case.errors


# ------------------------------------------------------------------ signals


def test_sigterm_saves_like_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = tmp_path / "built"
    monkeypatch.setenv("HOSTILE_COUNT", str(count))
    proc = start("bench", "contended", "--impl", "_hostile:counted", "--loop", "asyncio",
                 "--duration", "0.1", "--repeat", "50", "--no-ceiling", "-o", "run.json",
                 cwd=tmp_path)
    # limiters built: the probe, the warm-up, repeat 0, repeat 1 (so repeat 0 finished)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if count.exists() and len(count.read_text().split()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    run = results.load(tmp_path / "run.json")
    assert run.interrupted
    [case] = run.cases
    assert case.partial and 1 <= len(case.repeats) < 50
    assert "(partial)" in out


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sigterm_inside_a_loop_cancels_the_main_task(loop: str) -> None:
    """SIGTERM during a repeat goes through asyncio.Runner's Ctrl-C path: the main task
    is cancelled and the loop shuts down cleanly. Raising KeyboardInterrupt at whatever
    bytecode was running could strand a task whose wake-up had been taken off the ready
    queue, and the Runner's shutdown then waited for it forever (2 of 9 SIGTERMs hung a
    bench run)."""
    import asyncio

    from batchsem.bench.loops import factory
    from batchsem.cli.common import TERMINATED, sigterm_interrupts

    seen: list[str] = []

    async def main() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    TERMINATED.clear()
    t0 = time.monotonic()
    with (sigterm_interrupts(), pytest.raises(KeyboardInterrupt),
          asyncio.Runner(loop_factory=factory(loop)) as runner):
        runner.run(main())
    assert seen == ["cancelled"]
    assert TERMINATED.is_set()
    assert time.monotonic() - t0 < 10
    TERMINATED.clear()
    with sigterm_interrupts(), pytest.raises(KeyboardInterrupt):  # outside a loop: at once
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    TERMINATED.clear()


def test_interrupted_before_any_repeat_saves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The warm-up of a limiter that never returns takes about 4 s; SIGTERM comes once it
    # has begun (limiters built: the probe, the warm-up), not after a guessed sleep that
    # a slow start on a loaded machine could outlast.
    count = tmp_path / "built"
    monkeypatch.setenv("HOSTILE_COUNT", str(count))
    proc = start("bench", "uncontended", "--impl", "_hostile:never", "--loop", "asyncio",
                 "--duration", "3", "--no-ceiling", "-o", "run.json", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if count.exists() and len(count.read_text().split()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "nothing saved" in err and "Traceback" not in err
    assert not (tmp_path / "run.json").exists()


# ------------------------------------------------------------------- pipes


@pytest.mark.parametrize("args", [
    ["list"],
    ["bench", "contended", "--impl", "batchsem", "--loop", "asyncio", "--duration", "0.05",
     "--repeat", "1", "--no-ceiling", "--json"],
    ["compare", "a.json", "b.json", "--fail-on-regression"],
])
def test_closed_stdout_exits_0(tmp_path: Path, args: list[str]) -> None:
    """``| head`` closing the pipe is not a failure (exit 1 would mean "regression")."""
    from test_compare import make_case, make_run, noisy, write

    write(tmp_path / "a.json", make_run(make_case(noisy(100_000, seed=1))))
    write(tmp_path / "b.json", make_run(make_case(noisy(50_000, seed=2))))
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *args], cwd=tmp_path, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before anything is written (| head -0)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Exception ignored" not in err


# -------------------------------------------------------------- result files


def test_concurrent_saves_never_overwrite(tmp_path: Path) -> None:
    run = results.new_run("bench", ["batchsem"], {})
    path = tmp_path / "same-second.json"
    saved: list[Path] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(5):
            name = results.save(run, path)
            with lock:
                saved.append(name)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(saved) == 40 == len(set(saved))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in saved)
    for name in saved:
        assert results.load(name) == run


def test_three_bench_runs_in_one_second_keep_three_files(tmp_path: Path) -> None:
    procs = [start("bench", "contended", "--impl", "batchsem", "--loop", "asyncio",
                   "--duration", "0.05", "--repeat", "1", "--no-ceiling", cwd=tmp_path)
             for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    files = sorted((tmp_path / "results").glob("*.json"))
    assert len(files) == 3
    for f in files:
        results.load(f)


def test_explicit_output_that_exists_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    out.write_text("precious")
    result = invoke("bench", "contended", "--duration", "0.05", "-o", str(out))
    assert result.exit_code == 2
    assert "never overwritten" in result.stderr
    assert out.read_text() == "precious"


def test_failed_save_names_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "full"
    target.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if Path(kwargs.get("dir", "")) == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(results.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(results.tempfile, "gettempdir", lambda: str(tmp_path / "spare"))
    (tmp_path / "spare").mkdir()
    result = invoke("bench", "contended", "--impl", "batchsem", "--loop", "asyncio",
                    "--duration", "0.05", "--repeat", "1", "--no-ceiling",
                    "-o", str(target / "run.json"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchsem: error:")
    assert "No space left on device" in lines[0] and "saved to" in lines[0]
    [spare] = (tmp_path / "spare").glob("*.json")
    assert str(spare) in lines[0]
    assert results.load(spare).cases[0].workload == "contended"


def test_micro_passes_rigorous_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    result = invoke("bench", "--micro", "--rigorous", "-o", str(tmp_path / "m.json"))
    assert result.exit_code == 0, result.output
    assert calls and calls[0][-1] == "--rigorous"
    result = invoke("bench", "--micro", "--fast", "-o", str(tmp_path / "n.json"))
    assert calls[1][-1] == "--fast"


def test_json_output_is_strict(tmp_path: Path) -> None:
    result = invoke("bench", "contended", "--impl", "batchsem", "--loop", "asyncio",
                    "--duration", "0.05", "--repeat", "1", "--json",
                    "-o", str(tmp_path / "r.json"))
    assert result.exit_code == 0

    def refuse(name: str) -> None:
        raise AssertionError(name)

    json.loads(result.stdout, parse_constant=refuse)
