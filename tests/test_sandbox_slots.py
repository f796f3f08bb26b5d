"""SANDBOX_SLOTS' default: how many sandboxes this host holds at once."""

from __future__ import annotations

import pytest

from executions.sandbox import languages
from sandbox_project import host

pytestmark = pytest.mark.no_database


def slots(cores=2, available_mb=24000, cpus=0.5, memory_mb=64, overhead_mb=80, overcommit=1.0, reserve=0) -> int:
    return host.sandbox_slots(cores, available_mb, cpus, memory_mb, overhead_mb, overcommit, reserve)


def test_it_gives_each_sandbox_its_share_of_the_cores():
    assert slots() == 4
    assert slots(cores=16, cpus=1) == 16
    # No rounding error takes a slot away.
    assert slots(cores=3, cpus=0.3) == 10


def test_it_multiplies_by_the_overcommit_factor():
    assert slots(overcommit=2) == 8
    assert slots(overcommit=1.6) == 6


def test_memory_bounds_it():
    # 700 MB hold four slots of 64 + 80 MB, not eight.
    assert slots(overcommit=2, available_mb=700) == 4


def test_the_reserve_takes_its_memory_first():
    # 700 MB hold four sandboxes of 64 + 80 MB: one of them the reserve's, so three slots.
    assert slots(overcommit=2, available_mb=700, reserve=1) == 3
    # Where memory is not the bound, the reserve takes nothing from the cores' slots.
    assert slots(overcommit=2, reserve=1) == 8
    assert slots(available_mb=100, reserve=1) == 1


def test_it_ignores_memory_it_cannot_read():
    assert slots(available_mb=None) == 4


def test_it_is_at_least_one():
    assert slots(cores=1, cpus=2) == 1
    assert slots(available_mb=10) == 1
    # Nonsense is reported by the system checks, not by a failing import of the settings.
    assert slots(cpus=0) == 1
    assert slots(overcommit=-1) == 1


def test_a_slot_holds_the_largest_stage_any_language_gets_by_default():
    # A compile stage (512 MiB) outweighs the platform's 64 MiB for a one-liner, and Java's 256.
    assert languages.largest_default_memory_mb(64) == languages.COMPILER.memory_mb == 512
    assert languages.largest_default_memory_mb(2048) == 2048


def test_the_default_counts_a_slots_largest_stage(settings):
    assert settings.SANDBOX_SLOT_MEMORY_MB == languages.largest_default_memory_mb(settings.SANDBOX_MEMORY_MB)
    # 8 slots on these 2 cores and 24 GB; 1.6 GB available would hold 2 compiles, not 25 one-liners.
    assert slots(cores=2, cpus=0.5, overcommit=2, memory_mb=512, overhead_mb=55, available_mb=1600) == 2


def test_it_reads_this_host():
    assert host.cores() >= 1
    assert host.available_memory_mb() > 0

