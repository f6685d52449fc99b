"""Noise made visible and output readable anywhere: thresholds, MDE, --changed, environment
differences, winners, partial cases, 80-column tables, show on every kind of file, list."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
from _cli import invoke
from click.testing import CliRunner
from rich.console import Console
from test_compare import make_case, make_run, noisy, probed_case, write

from batchsem.bench import impls, results
from batchsem.bench.schema import Case, Stat, Summary, decode
from batchsem.bench.verdict import parse_threshold
from batchsem.cli import cli, render

TINY = ["--duration", "0.05", "--repeat", "2", "--tasks", "4", "--permits", "4"]


# ------------------------------------------------------------------ compare


def test_threshold_accepts_percent_and_fraction_and_refuses_ambiguity(tmp_path: Path) -> None:
    assert parse_threshold("5%") == parse_threshold("0.05") == 0.05
    assert parse_threshold("0") == 0.0 and parse_threshold("12.5%") == 0.125
    for bad in ("5", "1", "-1", "nan", "inf", "x", "5%%", ""):
        with pytest.raises(ValueError):
            parse_threshold(bad)
    a = write(tmp_path / "a.json", make_run(make_case(noisy(100_000, seed=1))))
    b = write(tmp_path / "b.json", make_run(make_case(noisy(50_000, seed=2))))
    pct = json.loads(invoke("compare", a, b, "--threshold", "5%", "--format", "json").stdout)
    frac = json.loads(invoke("compare", a, b, "--threshold", "0.05", "--format", "json").stdout)
    assert pct["rows"] == frac["rows"] and pct["threshold"] == 0.05
    result = invoke("compare", a, b, "--threshold", "5")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "ambiguous" in result.stderr
    assert "5%" in result.stderr and "0.05" in result.stderr


def test_changed_shows_only_rows_with_a_verdict(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", make_run(make_case(noisy(100_000, seed=1))))
    b = write(tmp_path / "b.json", make_run(make_case(noisy(50_000, seed=2))))
    doc = json.loads(invoke("compare", a, b, "--changed", "--format", "json").stdout)
    assert [r["metric"] for r in doc["rows"]] == ["throughput"]
    out = invoke("compare", a, b, "--changed").stdout
    assert "throughput" in out and "p50" not in out and "jain" not in out
    md = invoke("compare", a, b, "--changed", "--format", "markdown").stdout
    assert len(md.strip().splitlines()) == 3  # header, rule, the one row


def test_no_change_shows_the_minimum_detectable_effect(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", make_run(make_case(noisy(100_000, noise=0.05, seed=1))))
    b = write(tmp_path / "b.json", make_run(make_case(noisy(101_000, noise=0.05, seed=2))))
    doc = json.loads(invoke("compare", a, b, "--format", "json").stdout)
    cell = next(r for r in doc["rows"] if r["metric"] == "throughput")["cells"][1]
    assert cell["verdict"] == "no change"
    # 5 samples a side with ~3% spread: more than the 5% threshold could hide a change
    assert cell["detectable"] > 0.05
    out = invoke("compare", a, b).stdout
    assert f"(MDE {cell['detectable']:.0%})" in out


def test_cases_match_on_parameter_values(tmp_path: Path) -> None:
    ints = make_case(noisy(100_000, seed=1), params={"hold": 0, "permits": 8, "tasks": 32})
    floats = make_case(noisy(100_000, seed=2),
                       params={"hold": 0.0, "permits": 8.0, "tasks": 32})
    a = write(tmp_path / "a.json", make_run(ints))
    b = write(tmp_path / "b.json", make_run(floats))
    result = invoke("compare", a, b, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["unmatched"] == []


def test_compare_warns_when_environments_differ(tmp_path: Path) -> None:
    base = make_run(make_case(noisy(100_000, seed=1)))
    other = make_run(make_case(noisy(100_000, seed=2)))
    other.environment = dataclasses.replace(other.environment, python="3.99.0",
                                             cpu_model="Other CPU")
    a, b = write(tmp_path / "a.json", base), write(tmp_path / "b.json", other)
    result = invoke("compare", a, b)
    assert result.exit_code == 0
    assert "python differs" in result.stderr and "3.99.0" in result.stderr
    assert "cpu_model differs" in result.stderr
    assert "differs" not in invoke("compare", a, a).stderr


# -------------------------------------------------------------- noise shown


def _case(mean: float, ci: float, n: int = 3, impl: str = "x", partial: str | None = None) -> Case:
    stat = Stat(mean=mean, stdev=ci, ci95=ci, min=mean - ci, max=mean + ci, n=n)
    raw = dataclasses.asdict(decode(Case, make_case([mean] * n, impl=impl)))
    case = decode(Case, raw)
    assert case.summary is not None
    summary: Summary = dataclasses.replace(case.summary, throughput_ops=stat)
    return dataclasses.replace(case, summary=summary, partial=partial)


def _render(cases: list[Case], width: int = 150) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=True, color_system="standard").print(
        render.workload_tables(cases, width))
    return buf.getvalue()


def test_winner_is_highlighted_only_when_intervals_do_not_overlap() -> None:
    bold_green = "\x1b[1;32m"
    clear = [_case(100_000, 2_000, impl="a"), _case(80_000, 2_000, impl="b")]
    assert re.search(re.escape(bold_green) + r" *100k", _render(clear))
    overlapping = [_case(100_000, 15_000, impl="a"), _case(90_000, 15_000, impl="b")]
    assert bold_green not in _render(overlapping)


def test_single_repeat_and_partial_cases_never_show_plus_minus_zero() -> None:
    out = _render([_case(100_000, 0.0, n=1, impl="a"),
                   _case(90_000, 900, impl="b", partial="2 of 3 repeats (interrupted)")])
    assert "±0%" not in out
    assert "(1 repeat)" in out and "(partial)" in out


def test_wide_intervals_warn_with_the_fix() -> None:
    warning = render.noise_warning([_case(100_000, 20_000), _case(100_000, 1_000, impl="y")])
    assert warning is not None
    text = warning.plain
    assert "1 case(s)" in text and "--repeat" in text and "--duration" in text
    assert render.noise_warning([_case(100_000, 1_000)]) is None


def test_a_machine_whose_speed_changed_is_named_with_the_range() -> None:
    """The speed probe's per-repeat medians 10 µs in one case and 20 µs in another: the
    run is flagged with the range; a steady machine, or files without the probe, not."""
    fast = decode(Case, probed_case(1, 100_000.0, 10.0))
    slow = decode(Case, probed_case(2, 50_000.0, 20.0))
    warning = render.speed_warning([fast, slow])
    assert warning is not None
    assert "2.0x" in warning.plain and "tput/probe" in warning.plain
    assert render.speed_warning([fast, decode(Case, probed_case(3, 100_000.0, 10.5))]) is None
    assert render.speed_warning([decode(Case, make_case([1.0, 2.0]))]) is None


def test_environment_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent)  # inside the project's checkout
    env = results.environment()
    assert env.python_build and env.loadavg is not None and len(env.loadavg) == 3
    if Path("/proc/cpuinfo").exists():
        assert env.cpu_model
    if (Path(__file__).resolve().parent.parent / ".git").exists():
        assert env.git_commit


# ---------------------------------------------------------- readable anywhere


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("readable")
    out = {"bench": d / "bench.json", "starve": d / "starve.json"}
    r = invoke("bench", "contended", "starvation", "--impl", "batchsem,asyncio", "--loop",
               "asyncio", *TINY, "-o", str(out["bench"]))
    assert r.exit_code == 0, r.output
    r = invoke("starve-test", "--impl", "batchsem,condition", "--loop", "asyncio",
               "--duration", "0.3", "--small-tasks", "8", "--permits", "4",
               "-o", str(out["starve"]))
    assert r.exit_code in (0, 1), r.output
    return out


def _piped(*args: str, columns: int) -> str:
    """stdout of ``batchsem ARGS`` written to a pipe, with COLUMNS set."""
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code in (0, 1), result.output
    return result.stdout


@pytest.mark.parametrize("columns", [80, 100])
def test_tables_stay_whole_at_the_given_width(files: dict[str, Path], columns: int) -> None:
    outputs = [
        _piped("show", str(files["bench"]), columns=columns),
        _piped("show", str(files["starve"]), "--no-histograms", columns=columns),
        _piped("compare", str(files["bench"]), str(files["bench"]), columns=columns),
    ]
    for out in outputs:
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= columns
        assert "…" not in out  # rich's mark for a cut cell
    wide = _piped("show", str(files["bench"]), "--no-histograms", columns=200)
    assert max(len(line) for line in wide.splitlines()) > 100  # follows COLUMNS, not 150


def test_piped_output_without_columns_prints_tables_whole(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No terminal and no COLUMNS: every column, nothing folded, no fixed width."""
    monkeypatch.delenv("COLUMNS", raising=False)
    result = CliRunner().invoke(cli, ["show", str(files["bench"]), "--no-histograms"],
                                env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "not shown" not in result.stdout and "…" not in result.stdout
    header = next(line for line in result.stdout.splitlines()
                  if line.startswith("┃") and " impl " in line)
    for column in ("loop", "acq/s", "permits/s", "p50", "p99", "p99.9", "max", "Jain",
                   "overtakes", "invariants"):
        assert f" {column} " in header
    widths = {len(line) for line in result.stdout.splitlines() if line.startswith("┃")}
    assert max(widths) > 100  # wider than any terminal default: the table's own width


def test_show_renders_starve_test_verdicts(files: dict[str, Path]) -> None:
    out = invoke("show", str(files["starve"]), "--no-histograms").stdout
    assert "verdict" in out
    # each case's row shows the verdict its file holds (batchsem's is "ok" unless the
    # machine stalled the 0.3 s run past the deadline; which one is not this test's concern)
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("┡"))  # the verdicts
    end = next(i for i, line in enumerate(lines) if i > first and line.startswith("└"))
    rows = [line.split("│")[1:4] for line in lines[first + 1 : end]]
    shown = {(impl.strip(), loop.strip()): word.strip() for impl, loop, word in rows}
    verdicts = {(c.impl, c.loop): c.verdict for c in results.load(files["starve"]).cases}
    assert shown == {k: "STARVES" if v and v.starved else "ok" for k, v in verdicts.items()}
    assert shown["condition", "asyncio"] == "STARVES"  # it never serves the large request


def test_show_points_micro_files_to_pyperf(tmp_path: Path) -> None:
    micro = tmp_path / "micro.json"
    micro.write_text('{"benchmarks": [], "metadata": {}, "version": "1.0"}')
    result = invoke("show", str(micro))
    assert result.exit_code == 2
    assert "python -m pyperf show" in result.stderr and result.stderr.count("\n") == 1


def test_list_keeps_extras_in_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(impls, "installed", lambda name: False)
    out = invoke("list").stdout
    assert "pip install 'batchsem[peers]'" in out
