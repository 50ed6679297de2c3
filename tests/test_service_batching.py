"""`serving.batching.Batcher`: what waits is processed together, each item gets its own result."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

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


async def _submitted_while_held(
    batcher: Batcher, recorder: Recorder, first: int, rest: Iterable[int]
) -> list[asyncio.Task]:
    """`first` submitted and its batch held while `rest` are submitted: they wait together
    until the caller sets `recorder.release`."""
    recorder.release.clear()
    tasks = [asyncio.create_task(batcher.submit(first))]
    await asyncio.sleep(0.05)
    tasks += [asyncio.create_task(batcher.submit(item)) for item in rest]
    await asyncio.sleep(0.05)
    return tasks


def test_a_lone_item_is_processed_at_once() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=8)
    assert asyncio.run(batcher.submit(21)) == 42
    assert recorder.batches == [[21]]
    batcher.close()


def test_an_item_submitted_as_the_last_batch_ends_is_processed() -> None:
    """The waiter of a batch resumes before the finished drain's callbacks run: the next item
    it submits then must still start a drain (it once waited forever)."""
    batcher = Batcher(Recorder(), max_size=8)

    async def one_after_another() -> list[int]:
        return [await batcher.submit(i) for i in range(50)]

    results = asyncio.run(asyncio.wait_for(one_after_another(), timeout=10))
    assert results == [2 * i for i in range(50)]
    batcher.close()


def test_items_waiting_together_share_a_batch_up_to_max_size() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=4)

    async def scenario() -> list[int]:
        tasks = await _submitted_while_held(batcher, recorder, 0, range(1, 11))
        recorder.release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(scenario()) == [2 * i for i in range(11)]
    assert recorder.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    batcher.close()


def test_a_failing_item_fails_its_own_request_only() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=8)

    async def scenario() -> list[object]:
        tasks = await _submitted_while_held(batcher, recorder, 1, [2, -3, 4])
        recorder.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    one, two, bad, four = asyncio.run(scenario())
    assert (one, two, four) == (2, 4, 8)
    assert isinstance(bad, ValueError) and "negative" in str(bad)
    assert recorder.batches == [[1], [2, -3, 4], [2], [-3], [4]]  # then one by one
    batcher.close()


def test_a_caller_that_went_away_does_not_stop_the_others() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=8)

    async def scenario() -> list[object]:
        first, gone, kept = await _submitted_while_held(batcher, recorder, 1, [2, 3])
        gone.cancel()
        recorder.release.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(scenario()) == [2, 6]
    batcher.close()


def test_threads_rank_batches_side_by_side() -> None:
    """With two threads, a batch starts while the first still runs."""
    running = threading.Barrier(2, timeout=5)  # broken unless two batches run at once

    def process(items: list[int]) -> list[int]:
        running.wait()
        return items

    batcher = Batcher(process, max_size=1, threads=2)

    async def scenario() -> list[int]:
        return await asyncio.gather(batcher.submit(1), batcher.submit(2))

    assert asyncio.run(scenario()) == [1, 2]
    batcher.threads = 1
    running = threading.Barrier(1)
    assert asyncio.run(scenario()) == [1, 2]
    batcher.close()


def test_sizes_and_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        Batcher(Recorder(), max_size=0)
    with pytest.raises(ValueError, match="threads: expected 1 to 64"):
        Batcher(Recorder(), max_size=4, threads=0)
