"""Result files: reading and writing the versioned JSON document of :mod:`batchsem.bench.schema`.

Writing never overwrites: a run is written to a unique temporary file in the
target directory and then linked to its final name, which fails if that name
exists (two runs started in the same second get ``...-2.json``). Reading
validates the whole document (:func:`batchsem.bench.schema.decode`): every
problem is a :class:`ResultError` with one line naming the file and field.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import batchsem
from batchsem.bench import loops
from batchsem.bench.schema import (
    SCHEMA,
    Environment,
    Kind,
    Run,
    SchemaError,
    clean_text,
    decode,
)

__all__ = [
    "SCHEMA",
    "ResultError",
    "default_path",
    "environment",
    "fallback_path",
    "load",
    "new_run",
    "save",
]

#: Larger files are refused before parsing (a default suite writes about 1 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024


class ResultError(ValueError):
    """A result file is missing, unreadable, malformed or cannot be written (one line)."""


def _read_first_line(path: str, prefix: str = "") -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip() if prefix else line.strip()
    except OSError:
        return None
    return None


def _git_commit() -> str | None:
    """``git describe --always --dirty`` of the current directory's checkout, or None."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def environment() -> Environment:
    """Facts about the machine and software that a reader needs to trust the numbers."""
    from batchsem.bench.impls import _aiologic_version

    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    build, built = platform.python_build()
    return Environment(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        batchsem=batchsem.__version__,
        uvloop=loops.uvloop_version(),
        aiologic=_aiologic_version(),
        gil_enabled=getattr(sys, "_is_gil_enabled", lambda: True)(),
        cpu_model=_read_first_line("/proc/cpuinfo", "model name") or platform.processor() or None,
        governor=_read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        loadavg=load,
        python_build=f"{build} ({built}), {platform.python_compiler()}",
        git_commit=_git_commit(),
    )


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_run(kind: Kind, argv: Sequence[str], settings: dict[str, Any]) -> Run:
    """An empty run; cases are appended as they finish."""
    return Run(
        schema=SCHEMA,
        created=now_utc().isoformat(timespec="seconds").replace("+00:00", "Z"),
        kind=kind,
        command=list(argv),
        environment=environment(),
        settings=settings,
    )


def default_path(label: str, directory: Path | None = None) -> Path:
    """``./results/<UTC timestamp>-<label>.json`` (relative to the current directory).

    Not reserved: :func:`save` picks ``-2``, ``-3``, ... if the name is taken by then.
    """
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    return (directory or Path("results")) / f"{stamp}-{safe}.json"


def fallback_path(path: Path) -> Path:
    """Where a run goes when ``path`` cannot be written: the system temp directory."""
    return Path(tempfile.gettempdir()) / path.name


def check_writable(path: Path, *, must_not_exist: bool = False) -> None:
    """Fail early (before any measuring) if ``path`` cannot be written. Raises ResultError."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultError(f"cannot create {parent}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ResultError(f"{path} is a directory")
    if must_not_exist and path.exists():
        raise ResultError(f"{path} exists: result files are never overwritten (choose another "
                          "name, or give a directory)")
    if not os.access(parent, os.W_OK):
        raise ResultError(f"cannot write to {parent}: permission denied")


def _candidates(path: Path, unique: bool) -> list[Path]:
    if not unique:
        return [path]
    return [path] + [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(2, 1000)]


def save(run: Run, path: Path, *, unique: bool = True) -> Path:
    """Write ``run`` without ever replacing an existing file; return the name written.

    The document goes to a unique temporary file next to ``path`` first and is
    then hard-linked to its name (an exclusive create; where links are not
    supported the file is created with ``O_EXCL`` instead). If the name is
    taken and ``unique`` is true, ``-2``, ``-3``, ... are tried. Raises
    :class:`ResultError` (one line) if nothing could be written, or if
    ``unique`` is false and ``path`` exists.
    """
    text = json.dumps(run.to_json(), indent=1, allow_nan=False) + "\n"
    check_writable(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ResultError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise ResultError(f"cannot write {path}: {exc.strerror or exc}") from None
        for name in _candidates(path, unique):
            try:
                os.link(tmp, name)
                return name
            except FileExistsError:
                continue
            except OSError:  # no hard links here: exclusive create and write again
                try:
                    with open(name, "x", encoding="utf-8") as fh:
                        fh.write(text)
                    return name
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise ResultError(f"cannot write {name}: {exc.strerror or exc}") from None
        raise ResultError(f"{path} exists: result files are never overwritten")
    finally:
        tmp.unlink(missing_ok=True)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a result file may hold")


def load(path: Path) -> Run:
    """Read and validate a result file. Raises ResultError with a one-line reason."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ResultError(f"{path}: {size} bytes is too large for a result file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise ResultError(f"{path}: not a batchsem result file (not UTF-8 text)") from None
    except OSError as exc:
        raise ResultError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise ResultError(f"{path}: not a batchsem result file (nested too deeply)") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        reason = " ".join(str(exc).split())[:120]
        raise ResultError(f"{path}: not a batchsem result file ({reason})") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: not a batchsem result file (top level is not an object)")
    schema = data.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("batchsem.run/"):
            raise ResultError(f"{path}: schema {clean_text(schema[:40])} is not supported "
                              f"(this reads {SCHEMA})")
        if "benchmarks" in data and "metadata" in data:
            raise ResultError(f"{path}: a pyperf file (bench --micro): use "
                              f"'python -m pyperf show {path}'")
        raise ResultError(f"{path}: not a batchsem result file (no {SCHEMA!r} schema)")
    try:
        return decode(Run, data, "run")
    except SchemaError as exc:
        raise ResultError(f"{path}: malformed: {exc}") from None
