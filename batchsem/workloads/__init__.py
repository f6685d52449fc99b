"""The workload registry: one module per workload, each exporting ``WORKLOAD``."""

from __future__ import annotations

from .base import Context, Limiter, Param, ParamError, Recorder, Workload
from .batch_mix import WORKLOAD as BATCH_MIX
from .cancel_storm import WORKLOAD as CANCEL_STORM
from .close_storm import WORKLOAD as CLOSE_STORM
from .contended import WORKLOAD as CONTENDED
from .processes import WORKLOAD as PROCESSES
from .rw_mix import WORKLOAD as RW_MIX
from .starvation import WORKLOAD as STARVATION
from .threads import WORKLOAD as THREADS
from .uncontended import WORKLOAD as UNCONTENDED

#: Every workload, in the order the default suite runs them.
REGISTRY: dict[str, Workload] = {
    w.name: w
    for w in (
        UNCONTENDED,
        CONTENDED,
        BATCH_MIX,
        RW_MIX,
        STARVATION,
        CLOSE_STORM,
        CANCEL_STORM,
        THREADS,
        PROCESSES,
    )
}

__all__ = ["REGISTRY", "Context", "Limiter", "Param", "ParamError", "Recorder", "Workload"]
