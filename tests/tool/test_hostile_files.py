"""Hostile result files: every field of real bench and starve-test files, mutated.

``show`` and ``compare`` must answer each with either a normal rendering (the
value was still valid) or one line and exit 2: never a traceback, never raw
terminal control from the file, never markup from the file interpreted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli import invoke

from batchsem.bench import results

# 0.25 s repeats: the files must hold grants (classes, histograms) to have every kind of
# record, and on a loaded machine a preemption can outlast a 0.05 s repeat.
TINY = ["--duration", "0.25", "--repeat", "2", "--tasks", "4", "--permits", "4", "--loop",
        "asyncio"]
ESC = "\x1b"


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    bench = d / "bench.json"
    # one case with request classes: every kind of record, and fast to render many times
    r = invoke("bench", "starvation", "--impl", "batchsem", "--no-ceiling", *TINY,
               "-o", str(bench))
    assert r.exit_code == 0, r.output
    starve = d / "starve.json"
    r = invoke("starve-test", "--impl", "batchsem", "--loop", "asyncio", "--duration", "0.1",
               "--small-tasks", "4", "--permits", "2", "-o", str(starve))
    assert r.exit_code == 0, r.output
    return {"bench": bench, "starve": starve}


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every path into ``doc`` (objects and lists too), each list visited at index 0 only."""
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, (*path, k))
    elif isinstance(doc, list) and doc:
        yield from leaves(doc[0], (*path, 0))


def set_at(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


MARKUP = "[/][bold red]x[/bold red][link=file:///etc/passwd]y"
TERMINAL = f"{ESC}[31mred{ESC}]8;;http://evil/{ESC}\\link{ESC}]8;;{ESC}\\{ESC}[2J\x07\x9b"


def mutations(value: Any) -> list[Any]:
    """Values of the wrong type, out of range, hostile strings."""
    out: list[Any] = ["x", None, {"a": 1}, [1], True, -1, 10**30, -2.5]
    if isinstance(value, str):
        out += [MARKUP, TERMINAL]
    if isinstance(value, int | float) and not isinstance(value, bool):
        out += [0, 0.0]
    if isinstance(value, list):
        out += [[], [None], ["x"] * 3]
    if isinstance(value, dict):
        out += [{}, {"": None}, {MARKUP: TERMINAL}]
    return out


def check(result: Any, what: str) -> None:
    assert result.exit_code in (0, 1, 2), (what, result.exit_code, result.output)
    out = result.stdout + result.stderr
    assert "Traceback" not in out, what
    assert ESC not in out and "\x07" not in out and "\x9b" not in out, (what, out[:400])
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("batchsem: error:"), (what, result.stderr)


def test_every_field_mutated(real_files: dict[str, Path], tmp_path: Path) -> None:
    """Every field of a bench and a starve-test file, two mutations each (rotating over
    :func:`mutations`, so every kind meets every type of field somewhere); each file goes
    through show, and the first case's fields through compare too. Histograms are
    decoded only when the mutation is in one (rendering them is the slow part)."""
    tried = 0
    for kind, path in real_files.items():
        doc = json.loads(path.read_text())
        good = str(path)
        for i, (where, value) in enumerate(leaves(doc)):
            options = mutations(value)
            for bad in (options[(i + k * 7) % len(options)] for k in range(2)):
                mutated = tmp_path / f"m{tried}.json"
                mutated.write_text(json.dumps(set_at(doc, where, bad)))
                what = f"{kind} {'.'.join(map(str, where))} = {bad!r:.40}"
                flags = [] if "histogram" in where else ["--no-histograms"]
                check(invoke("show", str(mutated), *flags), "show " + what)
                if kind == "bench" and where[:2] in ((), ("cases",), ("cases", 0)):
                    check(invoke("compare", good, str(mutated)), "compare " + what)
                tried += 1
    assert tried > 300


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"schema": "batchsem.run/1", "x": ' + "9" * 5000 + "}", "not a batchsem result"),
        ('{"schema": "batchsem.run/1", "x": NaN}', "NaN"),
        ('{"schema": "batchsem.run/1", "x": -Infinity}', "Infinity"),
        ("\ufeff{}", "not valid JSON"),
        ('{"schema": "batchsem.run/1\\u001b[2J"}', "\\x1b"),
        ('{"schema": "[/]"}', "not a batchsem result file"),
    ],
)
def test_hostile_texts(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(results.ResultError) as info:
        results.load(path)
    message = str(info.value)
    assert fragment in message and "\n" not in message and ESC not in message
    result = invoke("show", str(path))
    check(result, text[:30])
    assert result.exit_code == 2


def test_nan_in_a_field_is_refused_and_output_json_is_strict(
    real_files: dict[str, Path], tmp_path: Path
) -> None:
    text = real_files["bench"].read_text()
    doc = json.loads(text)
    mean = doc["cases"][0]["summary"]["throughput_ops"]["mean"]
    bad = tmp_path / "nan.json"
    bad.write_text(text.replace(json.dumps(mean), "NaN", 1))
    result = invoke("compare", str(real_files["bench"]), str(bad), "--format", "json")
    check(result, "nan")
    assert result.exit_code == 2 and "NaN" in result.stderr
    # a valid comparison's JSON parses with NaN and Infinity refused
    result = invoke("compare", str(real_files["bench"]), str(real_files["bench"]), "--format",
                    "json")
    assert result.exit_code == 0

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in compare's JSON output")

    json.loads(result.stdout, parse_constant=refuse)


def test_strings_from_files_are_shown_as_text(
    real_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough that no cell folds: at 150 columns the impl cell's width depends on the
    # measured numbers beside it, and a fold can split the markup (then only the "noisy"
    # warning, present only when the run was noisy, would still show it whole).
    monkeypatch.setenv("COLUMNS", "400")
    doc = json.loads(real_files["bench"].read_text())
    for case in doc["cases"]:
        case["impl"] = MARKUP
        case["notes"] = [TERMINAL]
    doc["command"] = ["batchsem", TERMINAL]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    result = invoke("show", str(path), "--no-histograms")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert any(line.startswith(f"│ {MARKUP} ") for line in rows), result.stdout
    assert ESC not in result.stdout and "\\x1b" in result.stdout
