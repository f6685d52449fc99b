"""``batchsem compare`` and batchsem.bench.compare on hand-made and real result files."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import statistics
from pathlib import Path
from typing import Any

import _cli
import pytest
from click.testing import Result

from batchsem.bench import engine, results
from batchsem.bench.compare import METRICS, compare_runs, compare_within
from batchsem.bench.schema import Case, Run, decode

METRIC_NAMES = [m.name for m in METRICS]


def latency(p50: float) -> dict[str, float]:
    return {"p50": p50, "p90": p50 * 2, "p99": p50 * 4, "p99_9": p50 * 8, "max": p50 * 10,
            "mean": p50 * 1.5, "count": 1000.0}


def make_case(
    throughputs: list[float],
    *,
    workload: str = "contended",
    impl: str = "batchsem",
    loop: str = "asyncio",
    p50: float = 10.0,
    overtakes: int = 0,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A case in the result-file shape with one repeat per throughput value."""
    repeats = [
        {"elapsed_s": 1.0, "throughput_ops": t, "latency_us": latency(p50), "jain_min": 1.0,
         "overtakes": overtakes, "invariants": {}, "error": None}
        for t in throughputs
    ]
    mean = sum(throughputs) / len(throughputs)
    return {
        "workload": workload,
        "impl": impl,
        "loop": loop,
        "params": {"hold": 0.0, "permits": 8, "tasks": 32} if params is None else params,
        "repeats": repeats,
        "summary": {
            "throughput_ops": {"mean": mean, "stdev": 0.0, "ci95": 0.0},
            "throughput_permits": {"mean": mean, "stdev": 0.0, "ci95": 0.0},
            "latency_us": latency(p50),
            "fairness": {"jain": 1.0, "overtakes": overtakes * len(throughputs),
                         "max_overtakes": min(overtakes, 1), "starved_tasks": 0,
                         "max_wait_ratio": 10.0},
            "classes": {},
            "extra": {},
        },
        "histogram": None,
        "invariants": {"completed_without_error": True},
        "status": "ok",
        "unit": "acq/s",
    }


def make_run(*cases: dict[str, Any]) -> Run:
    run = results.new_run("bench", ["batchsem", "bench"], {})
    run.cases = [decode(Case, c) for c in cases]
    return run


def noisy(mean: float, n: int = 5, noise: float = 0.01, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [mean * (1 + rng.uniform(-noise, noise)) for _ in range(n)]


def write(path: Path, run: Run) -> str:
    results.save(run, path)
    return str(path)


def invoke(*args: str) -> Result:
    return _cli.invoke("compare", *args)


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    return _cli.run_main(monkeypatch, capsys, "compare", *args)


def one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    _cli.assert_one_line_error(result.exit_code, result.stderr, fragment)
    assert "Traceback" not in result.output


@pytest.fixture
def regression(tmp_path: Path) -> tuple[str, str]:
    base = write(tmp_path / "base.json", make_run(make_case(noisy(100_000, seed=1))))
    new = write(tmp_path / "new.json", make_run(make_case(noisy(50_000, seed=2))))
    return base, new


# ------------------------------------------------------------------- verdicts


def test_2x_throughput_regression_is_reported(regression: tuple[str, str]) -> None:
    base, new = regression
    result = invoke(base, new)
    assert result.exit_code == 0, result.output
    assert "regressed" in result.stdout
    assert "1 regressed, 0 improved" in result.stdout
    assert re.search(r"\((-49\.\d|-50\.\d)%\)", result.stdout)  # the change, about -50%
    result = invoke(base, new, "--fail-on-regression")
    assert result.exit_code == 1
    # the other way round it is an improvement
    result = invoke(new, base, "--fail-on-regression")
    assert result.exit_code == 0
    assert "0 regressed, 1 improved" in result.stdout


def test_noise_within_threshold_is_no_change(tmp_path: Path) -> None:
    base = write(tmp_path / "base.json", make_run(make_case(noisy(100_000, seed=1))))
    new = write(tmp_path / "new.json",
                make_run(make_case(noisy(103_000, noise=0.02, seed=2))))
    result = invoke(base, new, "--fail-on-regression", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["regressions"] == 0 and doc["improvements"] == 0
    tput = next(r for r in doc["rows"] if r["metric"] == "throughput")
    assert tput["cells"][1]["verdict"] == "no change"
    assert 0 < tput["cells"][1]["change"] < 0.05
    # A stricter threshold makes 3% a real change, once the test can tell it from the
    # noise: p = 0.015. Throughput is the only gating test here (the other metrics are
    # informational and adjusted in their own family), so Holm leaves p as it is.
    result = invoke(base, new, "--threshold", "0.01", "--format", "json")
    doc = json.loads(result.stdout)
    tput = next(r for r in doc["rows"] if r["metric"] == "throughput")
    cell = tput["cells"][1]
    assert doc["tests"] == 1
    assert cell["p_adjusted"] == pytest.approx(cell["p_value"])
    assert cell["p_adjusted"] < 0.05
    assert cell["verdict"] == "improved"
    steady = write(tmp_path / "steady.json",
                   make_run(make_case(noisy(103_000, noise=0.002, seed=2))))
    result = invoke(base, steady, "--threshold", "0.01", "--format", "json")
    tput = next(r for r in json.loads(result.stdout)["rows"] if r["metric"] == "throughput")
    assert tput["cells"][1]["verdict"] == "improved"
    assert tput["cells"][1]["p_adjusted"] < 0.05


def test_large_change_within_the_noise_is_no_change(tmp_path: Path) -> None:
    base = write(tmp_path / "a.json", make_run(make_case([50_000, 150_000, 60_000, 140_000])))
    new = write(tmp_path / "b.json", make_run(make_case([60_000, 170_000, 70_000, 140_000])))
    doc = json.loads(invoke(base, new, "--format", "json").stdout)
    tput = next(r for r in doc["rows"] if r["metric"] == "throughput")
    cell = tput["cells"][1]
    assert cell["change"] > 0.05
    assert cell["p_value"] > 0.05
    assert cell["verdict"] == "no change"


def test_chance_findings_across_many_metrics_are_not_flagged(tmp_path: Path) -> None:
    # One case moved 8% with p = 0.001 on its own: flagged in a comparison of 6 tests
    # (Holm: 0.006), not when it is one test among ~70 (0.07). The 2x regression next
    # to it stays flagged.
    def lone() -> dict[str, Any]:
        return make_case([100_000, 102_500, 97_500, 100_000], workload="batch-mix")

    moved = make_case([92_000, 94_000, 90_000, 92_000], workload="batch-mix")
    a = write(tmp_path / "a.json", make_run(lone()))
    b = write(tmp_path / "b.json", make_run(moved))
    doc = json.loads(invoke(a, b, "--format", "json").stdout)
    cell = next(r for r in doc["rows"] if r["metric"] == "throughput")["cells"][1]
    assert cell["p_value"] < 0.05 and cell["verdict"] == "regressed"

    quiet = [make_case(noisy(100_000, seed=i), params={"hold": 0.0, "permits": 8, "tasks": i})
             for i in range(70)]
    quiet2 = [make_case(noisy(100_000, seed=100 + i),
                        params={"hold": 0.0, "permits": 8, "tasks": i}) for i in range(70)]
    broken = make_case(noisy(100_000, seed=7), impl="asyncio")
    broken2 = make_case(noisy(50_000, seed=8), impl="asyncio")
    a = write(tmp_path / "many-a.json", make_run(lone(), broken, *quiet))
    b = write(tmp_path / "many-b.json", make_run(moved, broken2, *quiet2))
    doc = json.loads(invoke(a, b, "--format", "json").stdout)
    assert doc["tests"] > 60
    rows = {(r["case"], r["metric"]): r["cells"][1] for r in doc["rows"]}
    cell = rows[("batch-mix batchsem asyncio", "throughput")]
    assert cell["p_value"] < 0.05 <= cell["p_adjusted"]
    assert cell["verdict"] == "no change"
    assert rows[("contended asyncio asyncio", "throughput")]["verdict"] == "regressed"
    assert doc["regressions"] == 1 and doc["improvements"] == 0
    result = invoke(a, b)
    assert f"Holm-adjusted over {doc['tests']} throughput tests" in result.stdout


def test_markdown_format(regression: tuple[str, str]) -> None:
    base, new = regression
    result = invoke(base, new, "--format", "markdown")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| case")
    assert lines[0] == "| case | metric | base (baseline) | new | verdict |"
    assert lines[1] == "|---|---|---|---|---|"
    assert len(lines) == 2 + len(METRICS)
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    assert "**regressed" in result.stdout


def test_json_format(regression: tuple[str, str]) -> None:
    base, new = regression
    result = invoke(base, new, "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["runs"] == ["base", "new"]
    assert doc["regressions"] == 1
    assert [r["metric"] for r in doc["rows"]] == METRIC_NAMES
    assert {r["case"] for r in doc["rows"]} == {"contended batchsem asyncio"}
    tput = doc["rows"][0]
    assert tput["cells"][0]["verdict"] == "baseline"
    assert tput["cells"][1]["verdict"] == "regressed"
    assert tput["cells"][1]["tested"] is True
    assert tput["cells"][1]["p_value"] < 0.05
    assert tput["cells"][1]["change"] == pytest.approx(-0.5, abs=0.02)
    # identical latencies
    p50 = next(r for r in doc["rows"] if r["metric"] == "p50")
    assert p50["cells"][1]["verdict"] == "no change"


def test_from_zero_overtakes_is_a_regression(tmp_path: Path) -> None:
    base = write(tmp_path / "a.json", make_run(make_case(noisy(1000, seed=1))))
    new = write(tmp_path / "b.json", make_run(make_case(noisy(1000, seed=2), overtakes=3)))
    doc = json.loads(invoke(base, new, "--format", "json").stdout)
    row = next(r for r in doc["rows"] if r["metric"] == "overtakes")
    assert row["cells"][1]["verdict"] == "regressed"
    assert row["primary"] is False
    # overtakes are informational: only throughput and p99 gate
    assert invoke(base, new, "--fail-on-regression").exit_code == 0


def test_single_repeat_is_marked_untested(tmp_path: Path) -> None:
    base = write(tmp_path / "a.json", make_run(make_case([100_000])))
    new = write(tmp_path / "b.json", make_run(make_case([50_000])))
    result = invoke(base, new, "--format", "markdown")
    assert "regressed?" in result.stdout
    doc = json.loads(invoke(base, new, "--format", "json").stdout)
    assert doc["rows"][0]["cells"][1]["tested"] is False
    assert doc["rows"][0]["cells"][1]["p_value"] is None


def test_three_runs_and_unmatched_cases(tmp_path: Path) -> None:
    common = make_case(noisy(1000, seed=1))
    only_base = make_case(noisy(1000, seed=2), workload="batch-mix")
    only_new = make_case(noisy(1000, seed=3), impl="asyncio")
    other_params = make_case(noisy(1000, seed=4), params={"permits": 2})
    a = write(tmp_path / "a.json", make_run(common, only_base, other_params))
    b = write(tmp_path / "b.json", make_run(common, only_new))
    c = write(tmp_path / "c.json", make_run(common))
    result = invoke(a, b, c)
    assert result.exit_code == 0, result.output
    assert "only in a: batch-mix batchsem asyncio" in result.stdout
    assert "only in b: contended asyncio asyncio" in result.stdout
    # same workload/impl/loop but other params: a different case
    assert "only in a: contended batchsem asyncio" in result.stdout
    doc = json.loads(invoke(a, b, c, "--format", "json").stdout)
    assert doc["runs"] == ["a", "b", "c"]
    assert {r["case"] for r in doc["rows"]} == {"contended batchsem asyncio"}
    assert all(len(r["cells"]) == 3 for r in doc["rows"])
    unmatched = {(u["run"], u["case"]) for u in doc["unmatched"]}
    assert ("a", "batch-mix batchsem asyncio") in unmatched
    assert ("b", "contended asyncio asyncio") in unmatched
    md = invoke(a, b, "--format", "markdown").stdout
    assert "- only in a: batch-mix batchsem asyncio" in md


def test_unsupported_cases_are_not_compared(tmp_path: Path) -> None:
    ran = make_case(noisy(1000))
    skipped = {**make_case([1.0], workload="threads", impl="asyncio"),
               "status": "unsupported", "summary": None, "repeats": []}
    a = write(tmp_path / "a.json", make_run(ran, skipped))
    b = write(tmp_path / "b.json", make_run(ran, skipped))
    doc = json.loads(invoke(a, b, "--format", "json").stdout)
    assert {r["case"] for r in doc["rows"]} == {"contended batchsem asyncio"}
    assert doc["unmatched"] == []


# --------------------------------------------------------------------- errors


def test_nothing_in_common_exits_2(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", make_run(make_case([1.0, 2.0])))
    b = write(tmp_path / "b.json", make_run(make_case([1.0, 2.0], loop="uvloop")))
    one_line_error(invoke(a, b), "no case in common")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such file"),
        ("{oops", "not valid JSON"),
        ('{"schema": "batchsem.run/2", "cases": []}', "batchsem.run/2 is not supported"),
        ('{"schema": "something-else"}', "not a batchsem result file"),
    ],
)
def test_bad_files_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    fragment: str,
) -> None:
    good = write(tmp_path / "good.json", make_run(make_case([1.0, 2.0])))
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    one_line_error(invoke(good, str(bad)), fragment)
    # and through the console-script entry point
    code, out, err = run_main(monkeypatch, capsys, str(bad), good)
    assert code == 2 and out == ""
    assert err.startswith("batchsem: error:") and fragment in err
    assert len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", make_run(make_case([1.0, 2.0])))
    one_line_error(invoke(good), "at least one other run")
    one_line_error(invoke(good, good, "--by", "impl"), "exactly one file")
    one_line_error(invoke(good, "--by", "impl"), "only one impl")
    one_line_error(invoke(good, good, "--threshold", "-1"), "--threshold")
    one_line_error(invoke(good, good, "--threshold", "nan"), "--threshold")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(invoke(str(empty), good), "no result files")


def test_click_usage_errors_through_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys)
    assert code == 2 and err.startswith("batchsem: error:") and "RUNS" in err
    code, _, err = run_main(monkeypatch, capsys, "a.json", "--format", "xml")
    assert code == 2 and err.startswith("batchsem: error:") and "xml" in err
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------- directories


def test_directory_argument_expands_to_its_json_files(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    write(runs / "1-base.json", make_run(make_case(noisy(100_000, seed=1))))
    write(runs / "2-new.json", make_run(make_case(noisy(50_000, seed=2))))
    (runs / "notes.txt").write_text("not a run")
    (runs / ".hidden.json").write_text("{broken")
    doc = json.loads(invoke(str(runs), "--format", "json").stdout)
    assert doc["runs"] == ["1-base", "2-new"]  # sorted: the first is the baseline
    assert doc["regressions"] == 1
    # a directory can also be mixed with a file
    extra = write(tmp_path / "3-more.json", make_run(make_case(noisy(100_000, seed=3))))
    doc = json.loads(invoke(str(runs), extra, "--format", "json").stdout)
    assert doc["runs"] == ["1-base", "2-new", "3-more"]


# ----------------------------------------------------------------- --by impl


def test_by_impl_compares_implementations_in_one_file(tmp_path: Path) -> None:
    run = make_run(
        make_case(noisy(100_000, seed=1), impl="batchsem"),
        make_case(noisy(50_000, seed=2), impl="asyncio"),
        make_case(noisy(100_000, seed=3), impl="batchsem", loop="uvloop"),
        make_case(noisy(100_000, seed=4), impl="asyncio", loop="uvloop"),
        make_case(noisy(100_000, seed=5), impl="batchsem", workload="starvation"),
    )
    path = write(tmp_path / "run.json", run)
    doc = json.loads(invoke(path, "--by", "impl", "--format", "json").stdout)
    assert doc["runs"] == ["batchsem", "asyncio"]
    cases = {r["case"] for r in doc["rows"]}
    assert cases == {"contended * asyncio", "contended * uvloop", "starvation * asyncio"}
    tput = {r["case"]: r["cells"][1]["verdict"] for r in doc["rows"]
            if r["metric"] == "throughput"}
    assert tput["contended * asyncio"] == "regressed"
    assert tput["contended * uvloop"] == "no change"
    assert tput["starvation * asyncio"] == "n/a"  # asyncio did not run it
    assert invoke(path, "--by", "impl", "--fail-on-regression").exit_code == 1
    by_loop = json.loads(invoke(path, "--by", "loop", "--format", "json").stdout)
    assert by_loop["runs"] == ["asyncio", "uvloop"]
    assert "contended batchsem *" in {r["case"] for r in by_loop["rows"]}


def test_compare_functions_directly() -> None:
    base = make_run(make_case(noisy(100_000, seed=1)))
    new = make_run(make_case(noisy(50_000, seed=2)))
    cmp = compare_runs(["a", "b"], [base, new])
    assert cmp.regressions == 1 and cmp.improvements == 0
    assert [r.metric for r in cmp.rows] == METRIC_NAMES
    with pytest.raises(ValueError, match="no case in common"):
        compare_runs(["a", "b"], [base, make_run(make_case([1.0], loop="uvloop"))])
    with pytest.raises(ValueError, match="--by"):
        compare_within(base, "workload")
    json.dumps(cmp.as_json(), allow_nan=False)


# ---------------------------------------------------------- real short runs


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = []
    directory = tmp_path_factory.mktemp("real")
    for i in range(2):
        specs = engine.plan(
            ["contended", "starvation"], ["batchsem", "asyncio"], ["asyncio"], permits=4,
            tasks=8, duration=0.05, repeats=2, seed=i, rate=None, params={},
        )
        run = results.new_run("bench", ["batchsem", "bench"], {})
        run.cases = [engine.run_case(s) for s in specs]
        out.append(write(directory / f"run{i}.json", run))
    return out


def test_compare_two_real_runs(real_runs: list[str]) -> None:
    result = invoke(*real_runs)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for case in ("contended batchsem asyncio", "contended asyncio asyncio",
                 "starvation batchsem asyncio", "starvation asyncio asyncio"):
        assert case in out
    assert "regressed," in out and "improved" in out  # the summary line
    doc = json.loads(invoke(*real_runs, "--format", "json").stdout)
    assert len(doc["rows"]) == 4 * (len(METRICS) + 1)  # + the gating tput/probe row
    verdicts = {r["cells"][1]["verdict"] for r in doc["rows"]}
    assert verdicts <= {"improved", "regressed", "no change", "n/a"}
    assert verdicts & {"improved", "regressed", "no change"}
    for row in doc["rows"]:
        if row["metric"] == "throughput":
            assert row["cells"][1]["tested"] is True  # 2 repeats on each side
        if row["metric"] == "overtakes" and " batchsem " in row["case"]:
            assert row["cells"][0]["value"] == 0
            assert row["cells"][1]["verdict"] == "no change"
    by_impl = json.loads(invoke(real_runs[0], "--by", "impl", "--format", "json").stdout)
    assert by_impl["runs"] == ["batchsem", "asyncio"]


def test_what_gates_speed_probe_then_null_ceiling_then_raw_throughput(tmp_path: Path) -> None:
    """Real runs probe the machine's speed at every window edge, and the gating row is
    tput/probe. Files without the probe but with the null ceiling gate on tput/null;
    files without windows (older files) on raw throughput. The ceiling's own rows and
    every latency row are informational."""
    runs = []
    for i in range(2):
        # 0.25 s repeats: both sides need grants in every repeat for a ratio, and on a
        # loaded machine a preemption can outlast a 0.05 s repeat
        specs = engine.plan(["contended"], ["batchsem"], ["asyncio"], permits=4, tasks=8,
                            duration=0.25, repeats=2, seed=i, rate=None, params={},
                            ceiling=True)
        run = results.new_run("bench", ["batchsem", "bench"], {})
        run.cases = [engine.run_case(s) for s in specs]
        runs.append(run)
    cmp = compare_runs(["a", "b"], runs)
    gating = {(r.case, r.metric) for r in cmp.rows if r.primary}
    assert gating == {("contended batchsem asyncio", "tput/probe")}
    adjusted = next(r for r in cmp.rows if r.metric == "tput/probe")
    # the baseline shows the median over its windows of the window's rate times the
    # probe's time at that window (operations per probe duration)
    case = next(c for c in runs[0].cases if c.impl == "batchsem")
    products = [w * p / 1e6 for r in case.repeats if r.windows is not None
                for w, p in zip(r.windows.throughput_ops, r.windows.probe_us, strict=True)]
    assert len(products) == 20
    assert adjusted.cells[0].value == pytest.approx(statistics.median(products))
    assert adjusted.cells[1].samples == 20  # 2 repeats x 10 windows
    assert cmp.tests == 1

    def strip(runs: list[Run], **changes: Any) -> list[Run]:
        return [dataclasses.replace(run, cases=[dataclasses.replace(c, repeats=[
            dataclasses.replace(r, windows=None if r.windows is None or "windows" in changes
                                else dataclasses.replace(r.windows, **changes))
            for r in c.repeats]) for c in run.cases]) for run in runs]

    cmp = compare_runs(["a", "b"], strip(runs, probe_us=[]))
    gating = {(r.case, r.metric) for r in cmp.rows if r.primary}
    assert gating == {("contended batchsem asyncio", "tput/null")}
    rel = next(r for r in cmp.rows if r.metric == "tput/null")
    # the median over its windows of the window's rate divided by the null ceiling's
    # rate (its windows' mean) in the same repeat
    by_impl = {c.impl: c for c in runs[0].cases}
    ratios = [w / statistics.fmean(n.windows.throughput_ops)
              for b, n in zip(by_impl["batchsem"].repeats, by_impl["null"].repeats, strict=True)
              if b.windows is not None and n.windows is not None
              for w in b.windows.throughput_ops]
    assert len(ratios) == 20
    assert rel.cells[0].value == pytest.approx(statistics.median(ratios))
    cmp = compare_runs(["a", "b"], strip(runs, windows=None))
    gating = {(r.case, r.metric) for r in cmp.rows if r.primary}
    assert gating == {("contended batchsem asyncio", "throughput")}


def probed_case(seed: int, rate: float, probe_us: float, rounds: int = 6) -> dict[str, Any]:
    """A contended case with ``rounds`` repeats of 10 windows: rates around ``rate`` (2%
    noise) and the speed probe around ``probe_us`` (2% noise)."""
    rng = random.Random(seed)
    case = make_case([rate] * rounds)
    for rep in case["repeats"]:
        rep["windows"] = {
            "width_s": 0.02,
            "throughput_ops": [rate * rng.uniform(0.98, 1.02) for _ in range(10)],
            "p99_us": [40.0] * 10,
            "stolen_s": [0.0] * 10,
            "probe_us": [probe_us * rng.uniform(0.98, 1.02) for _ in range(10)],
        }
    return case


def test_a_slower_machine_cancels_and_a_slower_limiter_gates(tmp_path: Path) -> None:
    """The probe's point: the machine running 20% slower in the second run (every rate
    lower, every probe longer) is no change on the gating row, while a limiter 15%
    slower on the same machine is a regression and fails the gate."""
    base = write(tmp_path / "base.json", make_run(probed_case(1, 100_000.0, 10.0)))
    machine = write(tmp_path / "machine.json",
                    make_run(probed_case(2, 80_000.0, 12.5)))
    limiter = write(tmp_path / "limiter.json", make_run(probed_case(3, 85_000.0, 10.0)))
    doc = json.loads(invoke(base, machine, "--format", "json").stdout)
    rows = {r["metric"]: r for r in doc["rows"]}
    assert rows["tput/probe"]["primary"] is True
    assert rows["tput/probe"]["cells"][1]["verdict"] == "no change"
    assert rows["throughput"]["primary"] is False
    assert rows["throughput"]["cells"][1]["verdict"] == "regressed"  # informational
    assert invoke(base, machine, "--fail-on-regression").exit_code == 0
    doc = json.loads(invoke(base, limiter, "--format", "json").stdout)
    rows = {r["metric"]: r for r in doc["rows"]}
    assert rows["tput/probe"]["cells"][1]["verdict"] == "regressed"
    assert rows["tput/probe"]["cells"][1]["change"] == pytest.approx(-0.15, abs=0.02)
    assert invoke(base, limiter, "--fail-on-regression").exit_code == 1
