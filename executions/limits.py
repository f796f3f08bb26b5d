"""Per-execution limits: each language has default limits and maxima in the catalog; a request may
ask for anything up to the maxima, and a tenant's own maxima cap both.

The maxima come from one function, so that other maxima (a tenant's, say) can replace the
language's without touching the check.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from executions import judging
from executions.sandbox import languages
from executions.sandbox.languages import Language

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


def language_defaults(language: Language) -> ExecutionLimits:
    """A run's limits when the request names none, before a tenant's maxima cap them."""
    return language_bounds(language)[1]


def language_maxima(language: Language) -> Maxima:
    return language_bounds(language)[2]


# Each language's (language, defaults, maxima), made once for the settings they read: each
# submission needs both, and made anew they took a fifth of its checks' CPU (six reads of Django's
# settings, at about a microsecond each). Emptied when a test changes those settings.
BOUNDS: dict[str, tuple[Language, ExecutionLimits, Maxima]] = {}
BOUNDS_SETTINGS = frozenset({"SANDBOX_TIMEOUT_SECONDS", "SANDBOX_MEMORY_MB"})


def language_bounds(language: Language) -> tuple[Language, ExecutionLimits, Maxima]:
    bounds = BOUNDS.get(language.name)
    if bounds is None or bounds[0] is not language:
        defaults = ExecutionLimits(
            timeout_seconds=language.limits.timeout_seconds or settings.SANDBOX_TIMEOUT_SECONDS,
            memory_mb=language.limits.memory_mb or settings.SANDBOX_MEMORY_MB,
        )
        maxima = Maxima(
            timeout_seconds=max(language.max_timeout_seconds or settings.SANDBOX_TIMEOUT_SECONDS, defaults.timeout_seconds),
            memory_mb=max(language.max_memory_mb or settings.SANDBOX_MEMORY_MB, defaults.memory_mb),
        )
        bounds = BOUNDS[language.name] = (language, defaults, maxima)
    return bounds


@receiver(setting_changed)
def forget_bounds(setting: str, **kwargs) -> None:
    if setting in BOUNDS_SETTINGS:
        BOUNDS.clear()


def platform_maxima() -> Maxima:
    """The most any language allows (the bounds the API's schema shows)."""
    every = [language_maxima(language) for language in languages.CATALOG.values()]
    return Maxima(max(m.timeout_seconds for m in every), max(m.memory_mb for m in every))


def longest_execution_seconds() -> float:
    """The longest any execution may take in its sandboxes: a compile stage's limit and a run's."""
    # Every job's timeout: once per value of the setting (tests change it), not per job.
    return longest_for(settings.SANDBOX_TIMEOUT_SECONDS)


@functools.cache
def longest_for(platform_timeout_seconds: float) -> float:
    # language_maxima() reads that same setting: the argument is only the cache's key.
    return max(
        language_maxima(language).timeout_seconds + (language.compile.limits.timeout_seconds if language.compile else 0)
        for language in languages.CATALOG.values()
    )


def longest_test_seconds() -> float:
    """The longest one judged test's sandbox may live: its wall ceiling at the platform's longest limit."""
    return judging.wall_ceiling(platform_maxima().timeout_seconds, settings.SANDBOX_CPUS)


def longest_judging_seconds() -> float:
    """The longest a judged execution may take: its compile stage, then its tests (JUDGE_MAX_SECONDS
    bounds them, at admission)."""
    compiles = [language.compile.limits.timeout_seconds for language in languages.CATALOG.values() if language.compile]
    return max(compiles, default=0) + settings.JUDGE_MAX_SECONDS


def tenant_maxima(own, language: Language | None = None) -> Maxima:
    """A tenant's maxima for a language, from its Limits: its own where set, never above the
    language's (the worker caps them too)."""
    ceiling = language_maxima(language or languages.CATALOG["python"])
    return Maxima(
        timeout_seconds=min(own.max_timeout_seconds or ceiling.timeout_seconds, ceiling.timeout_seconds),
        memory_mb=min(own.max_memory_mb or ceiling.memory_mb, ceiling.memory_mb),
    )


def check_limits(
    timeout_seconds: float | None, memory_mb: int | None, maxima: Maxima, defaults: ExecutionLimits | None = None
) -> ExecutionLimits:
    """The limits a run gets: those asked for if they are within `maxima`, else the language's
    defaults (`defaults`, or the maxima themselves), never above the maxima."""
    if timeout_seconds is not None and not MIN_TIMEOUT_SECONDS <= timeout_seconds <= maxima.timeout_seconds:
        raise LimitExceeded(
            "timeout_seconds",
            f"must be between {MIN_TIMEOUT_SECONDS:g} and {maxima.timeout_seconds:g} seconds (the maximum).",
        )
    if memory_mb is not None and not MIN_MEMORY_MB <= memory_mb <= maxima.memory_mb:
        raise LimitExceeded("memory_mb", f"must be between {MIN_MEMORY_MB} and {maxima.memory_mb} MiB (the maximum).")
    defaults = defaults or ExecutionLimits(maxima.timeout_seconds, maxima.memory_mb)
    return ExecutionLimits(
        timeout_seconds=min(defaults.timeout_seconds, maxima.timeout_seconds) if timeout_seconds is None else timeout_seconds,
        memory_mb=min(defaults.memory_mb, maxima.memory_mb) if memory_mb is None else memory_mb,
    )
