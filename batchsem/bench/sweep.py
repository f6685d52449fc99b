"""Parameter sweeps: one case per value of one parameter (``bench --sweep NAME=v1,v2,...``).

A sweep is planned as ordinary cases, one set per value, so the engine runs
them interleaved like repeats (repeat 1 of every value and implementation,
then repeat 2, ...). The swept value of a case is ``case["params"][NAME]``:
``tasks``, ``permits`` and ``rate`` are case parameters already, and a
workload ``--param`` is one of the workload's own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchsem.bench import engine
from batchsem.workloads import REGISTRY, ParamError

__all__ = ["Sweep", "parse_sweep", "plan_sweep"]

#: Sweepable settings that are not workload parameters, with their value type.
SETTINGS: dict[str, type] = {"tasks": int, "permits": int, "rate": float}


@dataclass(frozen=True)
class Sweep:
    """The parameter ``name`` takes each of ``values`` (command-line text, in order)."""

    name: str
    values: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values)}


def parse_sweep(text: str) -> Sweep:
    """``"tasks=1,2,4"`` -> ``Sweep("tasks", ("1", "2", "4"))``.

    Raises :class:`ParamError` (one line) for a missing ``=``, an empty name,
    no values, an empty value or a repeated value. Whether the values suit
    the parameter is checked by :func:`plan_sweep`.
    """
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParamError(f"--sweep {text!r}: expected NAME=v1,v2,...")
    values = tuple(v.strip() for v in rest.split(","))
    if not rest.strip() or any(not v for v in values):
        raise ParamError(f"--sweep {text!r}: expected NAME=v1,v2,... with no empty value")
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ParamError(f"--sweep {name}: value {v} is given twice")
        seen.add(v)
    return Sweep(name, values)


def _setting(name: str, text: str) -> int | float:
    kind = SETTINGS[name]
    try:
        value: int | float = kind(text)
    except ValueError:
        raise ParamError(f"--sweep {name}={text}: expected {kind.__name__}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(f"--sweep {name}={text}: expected a finite number")
    return value


def plan_sweep(
    sweep: Sweep,
    workloads: list[str],
    impl_specs: list[str],
    loop_names: list[str],
    **options: Any,
) -> list[engine.CaseSpec]:
    """The cases of every value of the sweep, each validated like the plain option.

    ``options`` are :func:`engine.plan`'s keyword arguments; the swept one is
    replaced by each value in turn. Every chosen workload must take the swept
    parameter (a workload that ignored it would run the same case once per
    value): a workload parameter must be one of each workload's ``params``,
    and ``rate`` needs open-loop workloads. The swept name must not also be
    given as ``--param``. Raises :class:`ParamError` (or the errors of
    :func:`engine.plan`).
    """
    params: Mapping[str, str] = options["params"]
    name = sweep.name
    unknown = [w for w in workloads if w not in REGISTRY]
    if unknown:  # engine.plan words this error
        engine.plan(workloads, impl_specs, loop_names, **options)
    chosen = [REGISTRY[w] for w in workloads]
    if name in params:
        raise ParamError(f"--sweep {name} and --param {name}: give one of them")
    if name not in SETTINGS:
        lacking = [w.name for w in chosen if name not in {p.name for p in w.params}]
        if lacking:
            raise ParamError(
                f"--sweep {name}: not tasks, permits, rate or a parameter of "
                f"{', '.join(lacking)} (see 'batchsem list')"
            )
    elif name == "rate":
        closed = [w.name for w in chosen if not w.open_loop]
        if closed:
            raise ParamError(
                f"--sweep rate: {', '.join(closed)} is not an open-loop workload "
                "(choose contended or batch-mix)"
            )
    cases: list[engine.CaseSpec] = []
    for text in sweep.values:
        settings = dict(options)
        own = dict(params)
        if name in SETTINGS:
            settings[name] = _setting(name, text)
        else:
            for w in chosen:  # worded as --sweep, not as the --param it becomes
                param = next(p for p in w.params if p.name == name)
                try:
                    param.parse(text)
                except ParamError as exc:
                    raise ParamError(str(exc).replace("--param", "--sweep", 1)) from None
            own[name] = text
        settings["params"] = own
        cases += engine.plan(workloads, impl_specs, loop_names, **settings)
    return cases
