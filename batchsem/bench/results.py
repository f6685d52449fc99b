"""Result files: the stable, versioned JSON document every command writes and reads.

Schema ``batchsem.run/1``::

    {"schema": "batchsem.run/1", "created": ISO-8601 UTC, "command": argv,
     "kind": "bench" | "starve-test",
     "environment": {python, implementation, platform, cpu_count, batchsem, uvloop, ...},
     "settings": {...},
     "cases": [{"workload", "impl", "loop", "params", "repeats": [...],
                "summary": {"throughput_ops": {"mean", "stdev", "ci95", ...},
                            "throughput_permits": {...},
                            "latency_us": {"p50", "p90", "p99", "p99_9", "max", "mean"},
                            "fairness": {"jain", "overtakes", "max_overtakes",
                                         "starved_tasks", "max_wait_ratio"},
                            "classes": {NAME: {"latency_us", "fairness", "completed"}},
                            "extra": {...}},
                "histogram": {...}, "invariants": {NAME: bool},
                "status": "ok" | "failed" | "unsupported"}],
     "interrupted": bool}

Readers must accept unknown keys; a change that breaks readers bumps the version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import batchsem
from batchsem.bench import loops

SCHEMA = "batchsem.run/1"

__all__ = ["SCHEMA", "ResultError", "default_path", "environment", "load", "new_run", "save"]


class ResultError(ValueError):
    """A result file is missing, unreadable, not JSON, or of another schema (one line)."""


def environment() -> dict[str, Any]:
    """Facts about the machine and software that a reader needs to trust the numbers."""
    from batchsem.bench.impls import _aiologic_version

    aiologic = _aiologic_version()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "batchsem": batchsem.__version__,
        "batchsem_implementation": batchsem.IMPLEMENTATION,
        "uvloop": loops.uvloop_version(),
        "aiologic": aiologic,
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
    }


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_run(kind: str, argv: Sequence[str], settings: dict[str, Any]) -> dict[str, Any]:
    """An empty run document; cases are appended as they finish."""
    return {
        "schema": SCHEMA,
        "created": now_utc().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "kind": kind,
        "command": list(argv),
        "environment": environment(),
        "settings": settings,
        "cases": [],
        "interrupted": False,
    }


def default_path(label: str, directory: Path | None = None) -> Path:
    """``./results/<UTC timestamp>-<label>.json`` (relative to the current directory)."""
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    return (directory or Path("results")) / f"{stamp}-{safe}.json"


def check_writable(path: Path) -> None:
    """Fail early (before any measuring) if ``path`` cannot be written. Raises ResultError."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultError(f"cannot create {parent}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ResultError(f"{path} is a directory")
    if not os.access(parent, os.W_OK):
        raise ResultError(f"cannot write to {parent}: permission denied")


def save(run: dict[str, Any], path: Path) -> Path:
    """Write the run atomically (temp file + rename). Raises ResultError."""
    check_writable(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(run, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ResultError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def load(path: Path) -> dict[str, Any]:
    """Read and validate a result file. Raises ResultError with a one-line reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultError(f"{path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: not a batchsem result file (top level is not an object)")
    schema = data.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("batchsem.run/"):
            raise ResultError(f"{path}: schema {schema} is not supported (this reads {SCHEMA})")
        raise ResultError(f"{path}: not a batchsem result file (schema {schema!r})")
    cases = data.get("cases")
    if not isinstance(cases, list) or not all(
        isinstance(c, dict) and {"workload", "impl", "loop", "status"} <= c.keys() for c in cases
    ):
        raise ResultError(f"{path}: malformed 'cases'")
    return data


def case_key(case: dict[str, Any]) -> tuple[str, str, str, str]:
    """The identity used to match cases across runs: (workload, impl, loop, params)."""
    params = json.dumps(case.get("params", {}), sort_keys=True)
    return (case["workload"], case["impl"], case["loop"], params)
