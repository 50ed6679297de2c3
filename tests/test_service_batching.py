"""`serving.batching.Batcher`: what waits is processed together, each item gets its own result."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serving.batching import Batcher


class Recorder:
    """`process` doubling numbers; records batches, fails on negatives, can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.release.wait(10)
        self.batches.append(list(items))
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {items}")
        return [2 * item for item in items]


def test_a_lone_item_is_processed_at_once() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=8)
    assert asyncio.run(batcher.submit(21)) == 42
    assert recorder.batches == [[21]]
    batcher.close()


def test_items_waiting_together_share_a_batch_up_to_max_size() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=4)

    async def scenario() -> list[int]:
        recorder.release.clear()  # the first batch is held while ten more arrive
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(scenario()) == [2 * i for i in range(11)]
    assert recorder.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    batcher.close()


def test_a_failing_item_fails_its_own_request_only() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=8)

    async def scenario() -> list[object]:
        recorder.release.clear()
        first = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit(i)) for i in (2, -3, 4)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    one, two, bad, four = asyncio.run(scenario())
    assert (one, two, four) == (2, 4, 8)
    assert isinstance(bad, ValueError) and "negative" in str(bad)
    assert recorder.batches == [[1], [2, -3, 4], [2], [-3], [4]]  # then one by one
    batcher.close()


def test_a_caller_that_went_away_does_not_stop_the_others() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=8)

    async def scenario() -> list[object]:
        recorder.release.clear()
        first = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.05)
        gone, kept = asyncio.create_task(batcher.submit(2)), asyncio.create_task(batcher.submit(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        recorder.release.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(scenario()) == [2, 6]
    batcher.close()


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        Batcher(Recorder(), max_size=0)
