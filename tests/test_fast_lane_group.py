"""The fast lane's group commit (fastlane.Group): which submissions share a flush. Pure logic: the
flush here only records what it was given."""

from __future__ import annotations

import asyncio
import threading

import pytest

from executions import submissions
from executions.api.fastlane import Group

pytestmark = pytest.mark.no_database


class Recorder:
    def __init__(self, block: threading.Event | None = None):
        self.groups: list[list] = []
        self.block = block

    def __call__(self, items: list) -> list:
        self.groups.append(list(items))
        if self.block is not None:
            self.block.wait(5)
        return [f"done {item}" for item in items]


def test_what_arrives_in_one_turn_of_the_loop_is_one_flush():
    recorder = Recorder()

    async def main():
        group = Group(recorder, "test")
        # The first item used to start a flush of its own at once.
        return await asyncio.gather(*(group.add(n) for n in range(5)))

    assert asyncio.run(main()) == [f"done {n}" for n in range(5)]
    assert recorder.groups == [[0, 1, 2, 3, 4]]


def test_what_arrives_during_a_flush_goes_into_the_next():
    release = threading.Event()
    recorder = Recorder(release)

    async def main():
        group = Group(recorder, "test")
        first = asyncio.ensure_future(group.add("a"))
        while not recorder.groups:
            await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(group.add(item)) for item in ("b", "c")]
        await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(first, *later)

    assert asyncio.run(main()) == ["done a", "done b", "done c"]
    assert recorder.groups == [["a"], ["b", "c"]]


def test_a_refusal_is_its_items_result_and_a_failure_is_every_items_error():
    refused = submissions.QuotaExceeded(1)

    def flush(items):
        if items == ["boom"]:
            raise RuntimeError("the database is gone")
        return [refused if item == "refuse" else item for item in items]

    async def main():
        group = Group(flush, "test")
        results = await asyncio.gather(group.add("ok"), group.add("refuse"))
        with pytest.raises(RuntimeError):
            await group.add("boom")
        return results

    assert asyncio.run(main()) == ["ok", refused]
