"""Per-execution limits: a request may lower the platform's timeout and memory, never raise them.

The maxima come from one function, so that other maxima (a tenant's, say) can replace the
platform's without touching the check.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

# Below these a sandbox cannot start an interpreter in any useful way.
MIN_TIMEOUT_SECONDS = 0.1
MIN_MEMORY_MB = 16


@dataclass(frozen=True)
class Maxima:
    timeout_seconds: float
    memory_mb: int


@dataclass(frozen=True)
class ExecutionLimits:
    timeout_seconds: float
    memory_mb: int


class LimitExceeded(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def platform_maxima() -> Maxima:
    return Maxima(timeout_seconds=settings.SANDBOX_TIMEOUT_SECONDS, memory_mb=settings.SANDBOX_MEMORY_MB)


def tenant_maxima(own) -> Maxima:
    """A tenant's maxima from its Limits: its own where set, never above the platform's (the worker caps them too)."""
    platform = platform_maxima()
    return Maxima(
        timeout_seconds=min(own.max_timeout_seconds, platform.timeout_seconds),
        memory_mb=min(own.max_memory_mb, platform.memory_mb),
    )


def check_limits(timeout_seconds: float | None, memory_mb: int | None, maxima: Maxima) -> ExecutionLimits:
    """The limits a run gets: those asked for if they are within `maxima`, else the maxima themselves."""
    if timeout_seconds is not None and not MIN_TIMEOUT_SECONDS <= timeout_seconds <= maxima.timeout_seconds:
        raise LimitExceeded(
            "timeout_seconds",
            f"must be between {MIN_TIMEOUT_SECONDS:g} and {maxima.timeout_seconds:g} seconds (the maximum).",
        )
    if memory_mb is not None and not MIN_MEMORY_MB <= memory_mb <= maxima.memory_mb:
        raise LimitExceeded("memory_mb", f"must be between {MIN_MEMORY_MB} and {maxima.memory_mb} MiB (the maximum).")
    return ExecutionLimits(
        timeout_seconds=maxima.timeout_seconds if timeout_seconds is None else timeout_seconds,
        memory_mb=maxima.memory_mb if memory_mb is None else memory_mb,
    )
