"""``batchsem report``, ``--sweep`` and the CSV/Markdown exports, on real (short) runs.

The HTML report is opened in headless Chromium (Debian's ``chromium``): no
console error, every figure rendered, hover texts present, nothing fetched.
With ``CI`` set, a missing Chromium fails the test instead of skipping it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from _browser import CHROMIUM, Browser
from _cli import assert_one_line_error, invoke, run_main

from batchsem.bench.latency import LatencyRecorder

RESULTS = Path(__file__).resolve().parents[2] / "results"


def _bench(path: Path, *args: str) -> dict[str, Any]:
    result = invoke("bench", *args, "--loop", "asyncio", "--duration", "0.03", "--repeat", "2",
                    "-o", str(path))
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A baseline and a second run of starvation + contended, and a sweep over tasks."""
    d = tmp_path_factory.mktemp("runs")
    for name in ("base", "new"):
        _bench(d / f"{name}.json", "starvation", "contended", "--impl", "batchsem,asyncio")
    _bench(d / "sweep.json", "contended", "--impl", "batchsem,asyncio", "--sweep",
           "tasks=1,4,16", "--no-ceiling")
    return {"base": d / "base.json", "new": d / "new.json", "sweep": d / "sweep.json",
            "dir": d}


# -- sweeps -------------------------------------------------------------------


def test_sweep_makes_one_case_per_value_and_a_scalability_table(runs: dict[str, Path]) -> None:
    data = json.loads(runs["sweep"].read_text())
    assert data["settings"]["sweep"] == {"name": "tasks", "values": ["1", "4", "16"]}
    seen = sorted((c["impl"], c["params"]["tasks"]) for c in data["cases"])
    assert seen == sorted((i, t) for i in ("batchsem", "asyncio") for t in (1, 4, 16))
    out = invoke("show", str(runs["sweep"])).output  # the bench table names the swept value
    assert "tasks" in out


def test_sweep_values_run_interleaved_like_repeats() -> None:
    from batchsem.bench import engine
    from batchsem.bench.sweep import parse_sweep, plan_sweep

    specs = plan_sweep(parse_sweep("tasks=1,2,3"), ["contended"], ["batchsem"], ["asyncio"],
                       permits=2, tasks=32, duration=0.01, repeats=2, seed=0, rate=None,
                       params={}, ceiling=False)
    assert [s.tasks for s in specs] == [1, 2, 3]
    order: list[tuple[int, int]] = []
    engine.run_interleaved(specs, {}, lambda spec, index: order.append((spec.tasks, index)))
    assert order == [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (3, 1)]


def test_sweep_table_printed_by_bench(tmp_path: Path) -> None:
    result = invoke("bench", "contended", "--impl", "batchsem", "--loop", "asyncio",
                    "--sweep", "permits=1,2", "--duration", "0.02", "--repeat", "1",
                    "-o", str(tmp_path / "r.json"), "--no-ceiling")
    assert result.exit_code == 0, result.output
    assert "throughput and p99 against permits" in result.output
    rows = [line for line in result.output.splitlines() if re.match(r"\W+[12] \W", line)]
    assert len(rows) >= 2, result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sweep", "tasks"], "expected NAME=v1,v2"),
        (["--sweep", "tasks="], "no empty value"),
        (["--sweep", "tasks=1,,2"], "no empty value"),
        (["--sweep", "tasks=2,2"], "given twice"),
        (["--sweep", "tasks=1,x"], "--sweep tasks=x: expected int"),
        (["--sweep", "tasks=1,0"], "--tasks must be >= 1"),
        (["--sweep", "hold=0,-1"], "--sweep hold=-1.0: must be >= 0"),
        (["--sweep", "nope=1,2"], "--sweep nope: not tasks, permits, rate or a parameter"),
        (["--sweep", "hold=0,1", "--param", "hold=0"], "give one of them"),
        (["--sweep", "tasks=1,2", "--tasks", "4"], "--sweep tasks and --tasks"),
        (["--sweep", "rate=100,nan"], "--sweep rate=nan: expected a finite number"),
    ],
)
def test_sweep_bad_input_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    args: list[str], fragment: str,
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "bench", "contended", *args,
                            "-o", str(tmp_path / "r.json"))
    assert_one_line_error(code, err, fragment)
    assert not list(tmp_path.iterdir()), "nothing is measured or saved on bad input"


def test_sweep_rate_needs_open_loop_workloads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "bench", "contended", "starvation", "--sweep",
                            "rate=100,200", "-o", str(tmp_path / "r.json"))
    assert_one_line_error(code, err, "starvation is not an open-loop workload")


# -- exports ------------------------------------------------------------------


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_bench_exports_csv_and_markdown(tmp_path: Path) -> None:
    run = _bench(tmp_path / "r.json", "starvation", "--impl", "batchsem",
                 "--export-csv", str(tmp_path / "r.csv"),
                 "--export-markdown", str(tmp_path / "r.md"))
    rows = _csv(tmp_path / "r.csv")
    (case,) = run["cases"]
    classes = case["summary"]["classes"]
    assert [r["class"] for r in rows] == ["", *classes], "one row per case, then per class"
    whole = rows[0]
    assert float(whole["throughput_per_s"]) == case["summary"]["throughput_ops"]["mean"]
    assert float(whole["p99_us"]) == case["summary"]["latency_us"]["p99"]
    assert int(whole["tasks"]) == case["params"]["tasks"]
    for row, (name, cs) in zip(rows[1:], classes.items(), strict=True):
        assert float(row["p99_9_us"]) == cs["latency_us"]["p99_9"], name
        assert int(row["completed"]) == cs["completed"]
        assert row["throughput_per_s"] == ""  # throughput is per case, not per class
    md = (tmp_path / "r.md").read_text().splitlines()
    assert md[0].startswith("| workload | impl | loop | class |")
    assert "| p99 [µs] |" in md[0] and "| throughput [/s] |" in md[0]
    assert len(md) == 2 + len(rows)
    assert all(line.count("|") == md[0].count("|") for line in md)


def test_compare_and_report_export(runs: dict[str, Path], tmp_path: Path) -> None:
    result = invoke("compare", str(runs["base"]), str(runs["new"]),
                    "--export-csv", str(tmp_path / "c.csv"),
                    "--export-markdown", str(tmp_path / "c.md"))
    assert result.exit_code == 0, result.output
    rows = _csv(tmp_path / "c.csv")
    cases = {r["case"] for r in rows}
    assert len(cases) == 5  # starvation x 2 impls, contended x 2 impls + null
    assert {r["metric"] for r in rows} >= {"throughput", "p99", "jain", "overtakes"}
    assert {r["new_verdict"].rstrip("?") for r in rows} <= {
        "improved", "regressed", "no change", "n/a"}
    assert (tmp_path / "c.md").read_text().count("\n") == len(rows) + 2
    code = invoke("report", str(runs["base"]), str(runs["new"]), "-o", str(tmp_path / "r.html"),
                  "--export-csv", str(tmp_path / "r.csv")).exit_code
    assert code == 0
    report_rows = _csv(tmp_path / "r.csv")
    assert {r["run"] for r in report_rows} == {"base", "new"}


def test_export_to_unwritable_path_fails_before_measuring(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = run_main(monkeypatch, capsys, "bench", "contended", "--export-csv",
                            str(tmp_path / "file" / "x.csv"), "-o", str(tmp_path / "r.json"))
    assert_one_line_error(code, err, "cannot create")
    assert not (tmp_path / "r.json").exists()


# -- report -------------------------------------------------------------------


def test_report_without_matplotlib_is_a_one_line_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], runs: dict[str, Path]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, _, err = run_main(monkeypatch, capsys, "report", str(runs["base"]))
    assert_one_line_error(code, err, "pip install 'batchsem[report]'")


def test_report_corrupt_histogram_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], runs: dict[str, Path],
    tmp_path: Path,
) -> None:
    data = json.loads(runs["base"].read_text())
    data["cases"][0]["histogram"]["total"] = "HISTFAAAAB"  # valid base64 header, no payload
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, _, err = run_main(monkeypatch, capsys, "report", str(bad), "-o",
                            str(tmp_path / "r.html"))
    assert_one_line_error(code, err, "corrupt histogram")
    assert not (tmp_path / "r.html").exists()


def test_show_and_report_of_a_malformed_sweep_setting(runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    data = json.loads(runs["sweep"].read_text())
    data["settings"]["sweep"] = {"name": ["tasks"]}  # free-form settings from a file
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(data))
    assert invoke("show", str(odd), "--no-histograms").exit_code == 0
    assert invoke("report", str(odd), "-o", str(tmp_path / "r.html")).exit_code == 0
    good = invoke("show", str(runs["sweep"]), "--no-histograms").output
    assert "throughput and p99 against tasks" in good


def test_report_survives_hostile_values(tmp_path: Path) -> None:
    """Every field of a one-case run, mutated (see test_hostile_files): each mutation that
    still loads must give a report (exit 0) whose page holds no markup from the file."""
    from test_hostile_files import MARKUP, leaves, mutations, set_at

    from batchsem.bench import results

    src = tmp_path / "one.json"
    _bench(src, "contended", "--impl", "batchsem", "--no-ceiling", "--tasks", "4")
    doc = json.loads(src.read_text())
    odd = ["$\\frac{", "<script>alert(1)</script>", "_nolegend_", MARKUP, "a/../b"]
    loaded = 0
    for i, (where, value) in enumerate(leaves(doc)):
        if "histogram" in where or "repeats" in where:  # decoded/tested elsewhere; slow
            continue
        options = mutations(value) + (odd if isinstance(value, str) else [])
        bad = options[i % len(options)]
        path = tmp_path / f"m{i}.json"
        # a field outside the cases only reaches the page's text: no figures needed
        base = doc if where[:1] == ("cases",) else {**doc, "cases": []}
        path.write_text(json.dumps(set_at(base, where, bad)))
        try:
            results.load(path)
        except results.ResultError:
            continue  # refused on load: show/compare's tests cover the message
        out = tmp_path / f"m{i}.html"
        png = tmp_path / f"png{i}"
        pngs = ["--png", str(png)] if isinstance(bad, str) else []  # names become file names
        result = invoke("report", str(path), "-o", str(out), *pngs)
        what = f"{'.'.join(map(str, where))} = {bad!r:.40}"
        assert result.exit_code == 0, (what, result.output)
        assert "<script" not in out.read_text(), what
        assert all(p.parent == png for p in png.rglob("*")), what
        loaded += 1
    assert loaded > 30


def test_report_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "report", str(tmp_path / "missing.json"))
    assert_one_line_error(code, err, "no such file")
    (tmp_path / "file").write_text("")
    run = str(RESULTS / "readme-starvation-2core.json")
    out = tmp_path / "r.html"
    for args, fragment in (
        (["--png", str(tmp_path / "file" / "png")], "cannot write PNG files"),
        (["--threshold", "5"], "threshold"),
        (["--export-csv", str(out)], "both write"),  # the page's own path
    ):
        code, _, err = run_main(monkeypatch, capsys, "report", run, "-o", str(out), *args)
        assert_one_line_error(code, err, fragment)
        assert not out.exists(), args


def test_percentile_curve_matches_hdrhistogram() -> None:
    rec = LatencyRecorder()
    rec.record_ns([1000 * i for i in range(1, 10_001)])
    curve = rec.percentile_curve(step=0.25)
    assert curve[0] == (0.0, rec.value_at_percentile_us(0.0))
    assert curve[-1] == (100.0, rec.summary_us()["max"])
    for p, v in curve[:-1]:
        assert v == rec.value_at_percentile_us(p), p
    assert [p for p, _ in curve[:-1]] == sorted(p for p, _ in curve[:-1])
    assert len(curve) == 4 * 4 + 1 + 1  # k = 0 .. log10(10000) in steps of 0.25, then max


def test_report_of_runs_with_nothing_in_common(runs: dict[str, Path], tmp_path: Path) -> None:
    st = tmp_path / "st.json"
    assert invoke("bench", "starvation", "--impl", "batchsem", "--loop", "asyncio",
                  "--duration", "0.02", "--repeat", "1", "-o", str(st)).exit_code == 0
    out = tmp_path / "r.html"
    result = invoke("report", str(runs["sweep"]), str(st), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "not compared: " in result.stderr
    page = out.read_text()
    assert "Not compared: " in page and "sweep-tasks" in page and "starvation" in page


def test_starve_test_report_shows_the_verdicts(tmp_path: Path) -> None:
    run = tmp_path / "st.json"
    result = invoke("starve-test", "--impl", "batchsem,condition", "--loop", "asyncio",
                    "--duration", "0.5", "-o", str(run))
    assert result.exit_code == 1, result.output  # condition starves its large request
    out = tmp_path / "st.html"
    assert invoke("report", str(run), "-o", str(out)).exit_code == 0
    verdicts = re.search(r"starve-test verdicts</h3>.*?</table>", out.read_text(), re.S)
    assert verdicts is not None
    rows = re.findall(r"<tr><td>(\w+)</td><td>asyncio</td><td class=\"(\w+)\">(\w+)</td>",
                      verdicts.group(0))
    assert rows == [("batchsem", "ok", "ok"), ("condition", "starved", "STARVES")]


def test_work_per_task_is_saved_per_class(runs: dict[str, Path]) -> None:
    data = json.loads(runs["base"].read_text())
    for case in data["cases"]:
        if case["workload"] != "starvation":
            continue
        classes = case["summary"]["classes"]
        small, large = classes["small"], classes["large"]
        # One entry per task that made a request in the 30 ms window: on a slow machine
        # (python -X dev) some of the small tasks may not have started by its end.
        assert 0 < len(small["work_per_task"]) <= case["params"]["tasks"]
        assert len(large["work_per_task"]) == 1
        # one permit per small request: a task's work never exceeds the class's grants
        assert 0 < sum(small["work_per_task"]) <= small["completed"]


def test_default_suite_report_is_small_and_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "default.html"
    png = tmp_path / "png"
    result = invoke("report", str(RESULTS / "bench-default-2core.json"), "-o", str(out),
                    "--png", str(png))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert len(text.encode()) < 5_000_000
    # no external reference: only the SVG namespace URIs may look like URLs
    urls = set(re.findall(r"""(?:src|href)\s*=\s*["']?(?!#)([^"'\s>]+)""", text))
    assert not urls, urls
    assert "<script" not in text
    assert "mathdefault" not in text, "a TeX tick label is printed raw"
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "ids repeat across figures"
    pngs = sorted(p.name for p in png.iterdir())
    assert "contended-latency.png" in pngs and "starvation-classes-asyncio.png" in pngs
    assert all((png / p).stat().st_size < 200_000 for p in pngs)


def _chromium_or_skip() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so this fails instead of skipping")
    pytest.skip(message)


def test_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        _chromium_or_skip()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _chromium_or_skip()


_PLOTS = """Array.from(document.querySelectorAll('figure.plot')).map(f => {
  const svg = f.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : null;
  return {name: f.dataset.plot, paths: svg ? svg.querySelectorAll('path').length : 0,
          titles: svg ? svg.querySelectorAll('title').length : 0,
          width: box ? box.width : 0, height: box ? box.height : 0};
})"""


def _screenshot_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("BATCHSEM_SCREENSHOTS", str(tmp_path)))
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_browser_harness_sees_errors_and_fetches(tmp_path: Path) -> None:
    """The checks below can fail: a console error, an exception and a failed load are seen."""
    _chromium_or_skip()
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                    '<script>console.error("boom"); null.x;</script></body></html>')
    with Browser() as browser:
        browser.open(page)
        fetched = browser.evaluate("performance.getEntriesByType('resource').length")
        errors = browser.errors()
    assert fetched <= 1  # a failed file:// load may not be a resource entry, but it is logged
    assert any(e.startswith("log:") and "missing.png" in e for e in errors), errors
    assert any(e == "console: boom" for e in errors), errors
    assert any(e.startswith("exception:") for e in errors), errors


@pytest.mark.parametrize("which", ["compare", "sweep"])
def test_report_renders_in_chromium(runs: dict[str, Path], tmp_path: Path, which: str) -> None:
    _chromium_or_skip()
    from batchsem.bench import results
    from batchsem.bench.compare import compare_runs
    from batchsem.report.html import build_report

    names = ["base", "new"] if which == "compare" else ["sweep"]
    loaded = [(n, results.load(runs[n])) for n in names]
    cmp = compare_runs(names, [r for _, r in loaded], 0.05) if len(loaded) > 1 else None
    page = build_report(loaded, cmp)
    html_path = tmp_path / f"{which}.html"
    html_path.write_text(page.html, encoding="utf-8")
    shot = _screenshot_dir(tmp_path) / f"report-{which}.png"
    with Browser() as browser:
        browser.open(html_path)
        plots = browser.evaluate(_PLOTS)
        fetched = browser.evaluate("performance.getEntriesByType('resource').length")
        browser.screenshot(shot)
        errors = browser.errors()
    assert errors == []
    assert fetched == 0, "the report fetched something: it must be self-contained"
    assert len(plots) == len(page.plots) >= (4 if which == "sweep" else 10)
    for plot in plots:
        # a rendered matplotlib figure: frame, ticks, lines (dozens of paths), laid out
        assert plot["paths"] >= 10, plot
        assert plot["titles"] >= 1, plot
        assert plot["width"] > 300 and plot["height"] > 100, plot
    kinds = {p["name"].split("-", 1)[1] if "-" in p["name"] else p["name"] for p in plots}
    if which == "compare":
        assert {"latency", "throughput", "fairness", "classes-asyncio", "asyncio-runs"} <= kinds
    else:
        assert "sweep-tasks" in kinds
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] > 1000 and pixels.shape[1] >= 1000
    inked = (pixels[:, :, :3].sum(axis=2) < 2.5).mean()  # share of non-white pixels
    assert inked > 0.02, f"screenshot {shot} looks blank"
