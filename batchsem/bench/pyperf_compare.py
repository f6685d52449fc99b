"""Compare pyperf JSON files (as written by ``python -m batchsem.micro -o FILE``).

pyperf files are loaded with pyperf's public API (``pyperf.BenchmarkSuite.load``)
and benchmarks are matched by name. For each benchmark the samples are
``Benchmark.get_values()`` (every measured value of every worker process,
warmups excluded; pyperf has already divided them by loops x inner loops, so a
value is the time of one operation in seconds).

The verdict is :mod:`batchsem.bench.verdict`'s rule, the same as for
batchsem runs, with lower time better and every benchmark in one Holm family:

* ``change = mean(new) / mean(base) - 1`` (negative = faster);
* ``p_value`` is the two-sided p-value of Welch's t-test, or None when a
  side has fewer than 2 values (e.g. a ``--debug-single-value`` run);
* ``p_adjusted`` is ``p_value`` after Holm's adjustment over every tested row;
* ``significant`` is true when the rule says "improved" or "regressed";
  ``verdict`` is then "faster" / "slower", else "no change".

Benchmarks present in only one of the two files get a row with verdict
"missing in new" or "missing in base" and None for what cannot be computed.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import Any

import pyperf

from batchsem.bench.schema import clean_text
from batchsem.bench.verdict import ALPHA as VERDICT_ALPHA
from batchsem.bench.verdict import adjust, decide, measure

__all__ = ["ALPHA", "compare_pyperf", "is_pyperf_file", "load_suite"]

#: Significance level of the Welch test.
ALPHA = VERDICT_ALPHA

# pyperf writes its JSON with sorted keys, so a pyperf file always starts with
# the "benchmarks" key ("benchmarks" < "metadata" < "version").
_PYPERF_HEAD = re.compile(rb'\A\s*\{\s*"benchmarks"\s*:\s*\[')
_SNIFF_BYTES = 4096


def is_pyperf_file(path: Path) -> bool:
    """True if ``path`` looks like a pyperf JSON file (``.json`` or gzipped).

    Cheap: only the first few KiB are read and nothing is parsed; a file that
    passes may still fail to load (then :func:`compare_pyperf` raises
    ``ValueError``). Never raises; unreadable paths give False.
    """
    try:
        with open(path, "rb") as fp:
            head = fp.read(_SNIFF_BYTES)
        if head[:2] == b"\x1f\x8b":  # gzip magic: pyperf reads and writes *.json.gz
            with gzip.open(path, "rb") as gz:
                head = gz.read(_SNIFF_BYTES)
    except (OSError, EOFError):
        return False
    return _PYPERF_HEAD.match(head) is not None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_suite(path: Path) -> Any:
    """Load a pyperf file as a ``pyperf.BenchmarkSuite``; ``ValueError`` (one line) if it fails."""
    try:
        # pyperf wants a str: it tests the name for a ".gz" suffix.
        return pyperf.BenchmarkSuite.load(str(path))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not a pyperf file: invalid JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a pyperf file: not UTF-8 text") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read: {_one_line(str(exc))}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        reason = _one_line(str(exc)) or type(exc).__name__
        raise ValueError(f"{path}: not a valid pyperf file ({reason})") from None


def _values(bench: Any, path: Path) -> list[float]:
    values = [float(v) for v in bench.get_values()]
    if not values:
        raise ValueError(f"{path}: benchmark {bench.get_name()!r} has no values")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{path}: benchmark {bench.get_name()!r} has a non-finite value")
    return values


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _compare_one(
    name: str, base_bench: Any, new_bench: Any, base: Path, new: Path, threshold: float
) -> dict[str, Any]:
    base_unit, new_unit = base_bench.get_unit(), new_bench.get_unit()
    if base_unit != new_unit:
        raise ValueError(f"benchmark {name!r}: unit {base_unit} in {base} but {new_unit} in {new}")
    a = _values(base_bench, base)
    b = _values(new_bench, new)
    base_mean, new_mean = _mean(a), _mean(b)
    if base_mean <= 0.0:
        raise ValueError(f"{base}: benchmark {name!r} has a non-positive mean")
    m = measure(a, b)
    # The verdict is decided in compare_pyperf, once every p-value is known.
    return {
        "name": clean_text(name),
        "file": str(new),
        "unit": base_unit,
        "base_mean": base_mean,
        "new_mean": new_mean,
        "change": m.change,
        "p_value": m.p_value,
        "p_adjusted": None,
        "detectable": None if m.mde is None else max(threshold, m.mde),
        "verdict": "no change",
        "significant": False,
        "_threshold": threshold,
    }


def _decide(rows: list[dict[str, Any]]) -> None:
    """Holm-adjust the tested rows' p-values together and set their verdicts."""
    tested = [r for r in rows if r["p_value"] is not None]
    for r, p in zip(tested, adjust([r["p_value"] for r in tested], "holm"), strict=True):
        r["p_adjusted"] = p
    for r in rows:
        threshold = r.pop("_threshold", None)
        if threshold is None:  # a "missing in ..." row
            continue
        verdict = decide(r["change"], r["p_adjusted"], tested=r["p_value"] is not None,
                         threshold=threshold, higher_is_better=False)
        r["significant"] = verdict in ("improved", "regressed")
        if r["significant"]:
            r["verdict"] = "faster" if verdict == "improved" else "slower"


def _missing(name: str, new: Path, bench: Any, in_base: bool) -> dict[str, Any]:
    mean = _mean([float(v) for v in bench.get_values()]) if bench.get_nvalue() else None
    return {
        "name": clean_text(name),
        "file": str(new),
        "unit": bench.get_unit(),
        "base_mean": mean if in_base else None,
        "new_mean": None if in_base else mean,
        "change": None,
        "p_value": None,
        "p_adjusted": None,
        "detectable": None,
        "verdict": "missing in new" if in_base else "missing in base",
        "significant": False,
    }


def compare_pyperf(base: Path, others: list[Path], threshold: float) -> list[dict[str, Any]]:
    """Compare every benchmark of ``base`` with the same-named benchmark of each file in ``others``.

    Returns one row per (other file, benchmark name), in the order: for each
    other file, the base's benchmarks in base order, then benchmarks only in
    the other file. Keys: ``name``, ``file`` (the other file), ``unit``,
    ``base_mean``, ``new_mean``, ``change`` (``new_mean / base_mean - 1``; on
    times, negative = faster), ``p_value`` (Welch, None if not testable),
    ``p_adjusted`` (Holm over all tested rows), ``verdict`` ("faster",
    "slower", "no change", "missing in new", "missing in base") and
    ``significant`` (the change is beyond ``threshold`` and the adjusted
    p < 0.05). See the module docstring for the rule.

    Raises ``ValueError`` (one line) for an unreadable or corrupt file, a
    negative threshold, or a benchmark whose unit differs between files.
    """
    if not threshold >= 0.0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    base_suite = load_suite(base)
    base_benches = {b.get_name(): b for b in base_suite.get_benchmarks()}
    rows: list[dict[str, Any]] = []
    for other in others:
        new_suite = load_suite(other)
        new_benches = {b.get_name(): b for b in new_suite.get_benchmarks()}
        for name, base_bench in base_benches.items():
            new_bench = new_benches.get(name)
            if new_bench is None:
                rows.append(_missing(name, other, base_bench, in_base=True))
            else:
                rows.append(_compare_one(name, base_bench, new_bench, base, other, threshold))
        for name, new_bench in new_benches.items():
            if name not in base_benches:
                rows.append(_missing(name, other, new_bench, in_base=False))
    _decide(rows)
    return rows
