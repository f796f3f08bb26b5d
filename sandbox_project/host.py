"""What this host offers the sandboxes, and how many of them fit at once (SANDBOX_SLOTS' default).

Plain functions, importable before Django is set up: settings.py calls them.
"""

from __future__ import annotations

import math
import os


def cores() -> int:
    # The sandboxes run on the engine's host, which is this one (make run, docker-compose): its cores,
    # not a quota on the worker's own process or container.
    return os.cpu_count() or 1


def available_memory_mb() -> int | None:
    """The kernel's estimate of memory available without swapping (MemAvailable); None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def sandbox_slots(
    cores: int,
    available_mb: int | None,
    cpus_per_sandbox: float,
    memory_mb_per_sandbox: int,
    overhead_mb_per_slot: int,
    overcommit: float,
    reserve: int = 0,
) -> int:
    """How many sandboxes may run at once: the cores over each sandbox's CPU times the overcommit
    factor, no more than the available memory holds (each sandbox's limit plus its slot's overhead)
    beside the `reserve` workers' (they run sandboxes too), and at least one. Nonsense arguments
    give 1; the system checks report them."""
    if cpus_per_sandbox <= 0 or overcommit <= 0:
        return 1
    # The epsilon keeps 3 cores / 0.3 CPU at 10, not 9 by a rounding error.
    slots = math.floor(cores / cpus_per_sandbox * overcommit + 1e-9)
    per_slot_mb = memory_mb_per_sandbox + overhead_mb_per_slot
    if available_mb is not None and per_slot_mb > 0:
        slots = min(slots, available_mb // per_slot_mb - max(0, reserve))
    return max(1, slots)
