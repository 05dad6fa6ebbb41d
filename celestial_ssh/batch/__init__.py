"""Fleet moves: a batch of migrations from a plan file, and the evacuation of a host.

:mod:`.plan` reads and checks the plan file; :mod:`.runner` runs its migrations with
bounded concurrency through the one migration engine; :mod:`.evacuation` makes the plan
that empties a host and runs it.
"""

from .evacuation import (
    Assignment,
    evacuate,
    parse_mem_available,
    plan_evacuation,
    spread_by_memory,
)
from .plan import (
    DATA_PLANE_KEYS,
    DEFAULT_KEYS,
    ENTRY_KEYS,
    TOP_KEYS,
    Plan,
    PlanEntry,
    load_plan,
    parse_plan,
)
from .runner import (
    BatchEvent,
    BatchEventSink,
    BatchReport,
    BatchRun,
    EntryResult,
    EntryStatus,
    EntryUpdate,
    container_state,
    run_batch,
)

__all__ = [
    "DATA_PLANE_KEYS",
    "DEFAULT_KEYS",
    "ENTRY_KEYS",
    "TOP_KEYS",
    "Assignment",
    "BatchEvent",
    "BatchEventSink",
    "BatchReport",
    "BatchRun",
    "EntryResult",
    "EntryStatus",
    "EntryUpdate",
    "Plan",
    "PlanEntry",
    "container_state",
    "evacuate",
    "load_plan",
    "parse_mem_available",
    "parse_plan",
    "plan_evacuation",
    "run_batch",
    "spread_by_memory",
]
