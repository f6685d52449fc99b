"""The result schema, declared once: typed records for everything a result file holds.

Schema ``batchsem.run/1`` is the JSON form of :class:`Run` (``Run.to_json``),
field for field, in the order declared here. The engine builds these records,
``show``, ``compare``, ``starve-test`` and the exporters read them; nothing
else looks inside a result file. :func:`decode` turns untrusted JSON into
records and is the only validation a loaded file needs:

* every field is checked against its declared type (an ``int`` field takes a
  JSON integer or an integral number; a ``float`` field any finite number;
  NaN and infinities are refused everywhere); integers beyond 2**63 are
  refused;
* fields with a default may be missing (files written before the field
  existed); unknown keys are ignored (files written by newer versions);
* strings keep their text but every control character (ESC, BEL, C1, bidi
  overrides; not newline and tab) is replaced by a visible ``\\xNN`` escape,
  so nothing from a file can drive the terminal;
* free-form values (``settings``) are JSON checked to a bounded depth.

A failure raises :class:`SchemaError` naming the field (``cases[2].summary.
throughput_ops.mean: expected a number, got 'x'``). A change that breaks
readers bumps the version in :data:`SCHEMA`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "MAX_WORK_TASKS",
    "SCHEMA",
    "Case",
    "ClassSummary",
    "Environment",
    "Fairness",
    "Histogram",
    "Latency",
    "ParamValue",
    "Repeat",
    "Run",
    "SchemaError",
    "StarveVerdict",
    "Stat",
    "Summary",
    "Windows",
    "case_key",
    "clean_text",
    "decode",
]

SCHEMA = "batchsem.run/1"

#: A workload parameter's value as stored (``--param`` values after parsing).
ParamValue = bool | int | float | str

#: The identity of a case across runs: workload, impl, loop and parameter values.
CaseKey = tuple[str, str, str, tuple[tuple[str, ParamValue], ...]]

Status = Literal["ok", "failed", "unsupported"]
Kind = Literal["bench", "starve-test"]

_MAX_INT = 2**63
_MAX_JSON_DEPTH = 32


class SchemaError(ValueError):
    """A value does not fit the schema; the message names the field (one line)."""


@dataclass(frozen=True)
class Stat:
    """A metric over repeats (:func:`batchsem.bench.stats.summarize`): the interval is
    ``mean ± ci95`` (Student's t, 95%); ``ci95`` is 0.0 when ``n < 2`` (not known)."""

    mean: float
    stdev: float = 0.0
    ci95: float = 0.0
    min: float = 0.0
    max: float = 0.0
    n: int = 1

    @property
    def relative_ci(self) -> float | None:
        """``ci95 / mean``, or None when it cannot be known (one value, or a zero mean)."""
        if self.n < 2 or self.mean == 0:
            return None
        return self.ci95 / abs(self.mean)


@dataclass(frozen=True)
class Latency:
    """Wait latency in µs from a merged HdrHistogram (see ``LatencyRecorder.summary_us``)."""

    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float
    mean: float
    count: int = 0


@dataclass(frozen=True)
class Fairness:
    """Order and share fairness: Jain's index over per-task work (None if no tasks),
    overtakes (requests granted before an earlier one), starved tasks, max/p50 wait."""

    jain: float | None
    overtakes: int
    max_overtakes: int
    starved_tasks: int = 0
    max_wait_ratio: float | None = None


@dataclass(frozen=True)
class ClassSummary:
    """One request class (e.g. ``small`` / ``large``) over a case's repeats."""

    completed: int
    fairness: Fairness
    completed_in_window: int = 0
    longest_wait_in_window_us: float = 0.0
    failed: int = 0
    latency_us: Latency | None = None
    #: Permits each task of the class acquired, summed over the repeats, in task-id
    #: order (what Jain's index is computed from). Empty when the class has no
    #: long-lived tasks (open-loop arrivals) or more than ``MAX_WORK_TASKS`` of them.
    work_per_task: list[int] = field(default_factory=list)


#: The most tasks whose work :class:`ClassSummary` stores one by one.
MAX_WORK_TASKS = 4096


@dataclass(frozen=True)
class Summary:
    """A case over its repeats: throughput as :class:`Stat`, latency from the merged
    distribution (never an average of percentiles), fairness aggregated."""

    throughput_ops: Stat
    throughput_permits: Stat
    latency_us: Latency | None
    fairness: Fairness
    classes: dict[str, ClassSummary] = field(default_factory=dict)
    extra: dict[str, Stat] = field(default_factory=dict)


@dataclass(frozen=True)
class Windows:
    """Equal time windows of one repeat's timed period: the samples the gate tests.

    ``throughput_ops[i]`` is grants per second in window ``i``, counting only
    the time the run had a CPU or was idle: ``stolen_s[i]``, the time it sat
    runnable while other processes ran (Linux schedstat; 0 elsewhere), is
    taken out, and so is the speed probe run at its start. ``p99_us[i]`` is the
    99th percentile wait of the grants in it (None when it had none).
    ``probe_us[i]`` is how long :func:`batchsem.bench.probe.probe_ns` took at the
    window's edges (their mean, µs): the machine's speed at that moment, so
    ``throughput_ops[i] * probe_us[i]`` is throughput with the machine's
    changes of speed taken out. Empty when no probe ran (threaded workloads,
    files from before the probe).
    """

    width_s: float
    throughput_ops: list[float]
    p99_us: list[float | None]
    stolen_s: list[float] = field(default_factory=list)
    probe_us: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Repeat:
    """One timed repeat of a case (a fresh event loop and limiter)."""

    elapsed_s: float
    throughput_ops: float
    ops: int = 0
    permits: int = 0
    throughput_permits: float = 0.0
    latency_us: Latency | None = None
    overtakes: int = 0
    max_overtakes: int = 0
    pending_at_end: int = 0
    jain: dict[str, float | None] = field(default_factory=dict)
    jain_min: float | None = None
    starved_tasks: dict[str, int] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    invariants: dict[str, bool] = field(default_factory=dict)
    error: str | None = None
    windows: Windows | None = None


@dataclass(frozen=True)
class Histogram:
    """Merged wait-latency histograms, HdrHistogram's compressed base64 encoding."""

    unit: str = "ns"
    encoding: str = "hdrhistogram-base64"
    total: str | None = None
    classes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StarveVerdict:
    """``starve-test``'s judgement of one case (see ``batchsem.cli.starve_cmd``)."""

    starved: bool
    reasons: list[str]
    deadline_s: float
    large_completed: int
    small_completed: int
    longest_wait_s: float
    wait_p50_us: float | None
    wait_p99_us: float | None
    wait_max_us: float | None
    max_overtakes: int
    overtakes: int


@dataclass(frozen=True)
class Case:
    """One workload x implementation x loop with its parameters, and what was measured.

    ``status``: "ok" (every invariant held), "failed" (one did not, or the
    limiter raised, hung or lost permits) or "unsupported" (not run; see
    ``reason``). ``summary`` is None when no repeat finished. ``partial``
    says why fewer than ``planned_repeats`` repeats ran.
    """

    workload: str
    impl: str
    loop: str
    params: dict[str, ParamValue]
    status: Status
    repeats: list[Repeat] = field(default_factory=list)
    summary: Summary | None = None
    histogram: Histogram | None = None
    invariants: dict[str, bool] = field(default_factory=dict)
    unit: str = "acq/s"
    duration_s: float | None = None
    planned_repeats: int | None = None
    warmup_s: float = 0.0
    partial: str | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str | None = None
    verdict: StarveVerdict | None = None

    @property
    def key(self) -> CaseKey:
        return case_key(self.workload, self.impl, self.loop, self.params)

    @property
    def label(self) -> str:
        return f"{self.workload} {self.impl} {self.loop}"

    @property
    def ran(self) -> bool:
        """The case has measurements (it was supported and at least one repeat finished)."""
        return self.status != "unsupported" and self.summary is not None


@dataclass(frozen=True)
class Environment:
    """Facts about the machine and software a reader needs to trust the numbers.

    The fields after ``gil_enabled`` are None when unknown (another OS, no
    ``/proc``, not run inside a git checkout, or a file from an older version).
    """

    python: str
    implementation: str
    platform: str
    machine: str = ""
    cpu_count: int | None = None
    batchsem: str = ""
    uvloop: str | None = None
    aiologic: str | None = None
    gil_enabled: bool = True
    cpu_model: str | None = None
    governor: str | None = None
    loadavg: list[float] | None = None
    python_build: str | None = None
    git_commit: str | None = None
    #: Which core ``import batchsem`` chose: "c" (compiled) or "python".
    batchsem_implementation: str | None = None


@dataclass
class Run:
    """A result file: what was run, where, and the cases (appended as they finish)."""

    schema: str
    created: str
    kind: Kind
    command: list[str]
    environment: Environment
    settings: dict[str, Any]
    cases: list[Case] = field(default_factory=list)
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON document (plain dicts and lists, field order as declared)."""
        return dataclasses.asdict(self)


def case_key(
    workload: str, impl: str, loop: str, params: dict[str, ParamValue]
) -> CaseKey:
    """Match cases on parameter *values*: ``{"hold": 0}`` and ``{"hold": 0.0}`` are one case."""
    items = sorted(params.items(), key=lambda kv: kv[0])
    # ints and floats of equal value compare and hash equal; bool is kept apart from 1/0.
    norm = tuple((k, ("bool", v) if isinstance(v, bool) else v) for k, v in items)
    return (workload, impl, loop, norm)  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# decoding untrusted JSON

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """``text`` with every terminal control character shown as a ``\\xNN`` escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


T = TypeVar("T")
_HINTS: dict[type, dict[str, Any]] = {}


def decode(cls: type[T], value: object, where: str = "") -> T:
    """``value`` (parsed JSON) as a ``cls`` record. Raises :class:`SchemaError`."""
    return _decode(cls, value, where or cls.__name__)  # type: ignore[no-any-return]


def _what(value: object) -> str:
    if isinstance(value, str):
        return repr(clean_text(value[:20]))
    if isinstance(value, bool | int | float) or value is None:
        text = repr(value)
        return text if len(text) <= 24 else text[:20] + "..."
    return type(value).__name__ if not isinstance(value, dict | list) else (
        "an object" if isinstance(value, dict) else "a list"
    )


def _fail(where: str, expected: str, value: object) -> SchemaError:
    return SchemaError(f"{where}: expected {expected}, got {_what(value)}")


def _decode(tp: Any, value: object, where: str) -> Any:
    if tp is Any:
        _check_json(value, where, 0)
        return value
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _fail(where, "a value", value)
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _decode(members[0], value, where)
        for member in members:  # a scalar union (ParamValue): the value's own JSON type
            if _is_scalar(member, value):
                return _decode(member, value, where)
        raise _fail(where, " or ".join(m.__name__ for m in members), value)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or not isinstance(value, str):
            raise _fail(where, "one of " + ", ".join(map(str, allowed)), value)
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _fail(where, "a list", value)
        (item,) = typing.get_args(tp)
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        _, item = typing.get_args(tp)
        return {clean_text(k): _decode(item, v, f"{where}.{clean_text(k)[:40]}")
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _decode_record(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(where, "an integer", value)
        if not -_MAX_INT < value < _MAX_INT:
            raise _fail(where, "an integer below 2**63", value)
        return value
    if tp is float:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_MAX_INT < value < _MAX_INT:
                raise _fail(where, "a number below 2**63", value)
            return float(value)
        if not isinstance(value, float) or not math.isfinite(value):
            raise _fail(where, "a finite number", value)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        return clean_text(value)
    raise TypeError(f"schema type {tp!r} has no decoder")  # a bug in this module


def _is_scalar(tp: Any, value: object) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, float)
    if tp is str:
        return isinstance(value, str)
    return False


def _decode_record(cls: Any, value: object, where: str) -> Any:
    if not isinstance(value, dict):
        raise _fail(where, "an object", value)
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{where}: missing {f.name!r}")
    return cls(**kwargs)


def _check_json(value: object, where: str, depth: int) -> None:
    """Free-form JSON: finite numbers, bounded depth and integers (strings kept as they are;
    a reader shows them through :func:`clean_text`)."""
    if depth > _MAX_JSON_DEPTH:
        raise SchemaError(f"{where}: nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, "a finite number", value)
    if isinstance(value, int) and not isinstance(value, bool) and not -_MAX_INT < value < _MAX_INT:
        raise _fail(where, "an integer below 2**63", value)
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_json(v, f"{where}.{clean_text(k)[:40]}", depth + 1)
