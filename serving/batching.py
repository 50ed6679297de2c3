"""Requests that arrive together are ranked together.

Under load, /rank requests wait while one is ranked. `Batcher` hands everything that waits
(up to `max_size`) to one `Engine.rank_batch` call: eligibility and scoring then run once,
as one matrix product and one pass of each numpy operation over the batch, instead of once
per request, where numpy's per-call overheads dominate at catalog sizes of tens of thousands
of offers. Nothing waits on purpose: a batch starts as soon as the previous one is done, so
a lone request is ranked at once and a busy server ranks many at a time.

Batches run on worker threads, off the event loop: numpy releases the GIL on arrays of this
size, so the loop keeps reading and answering requests on the other core meanwhile. One
thread suits catalogs of tens of thousands of offers, where a batch is mostly Python that a
second thread would contend with for the GIL; at a hundred thousand offers a batch is mostly
numpy, and two threads keep both cores busy (`serving.settings.batch_threads`).

BentoML's own adaptive batching (`@bentoml.api(batchable=True)`) was not used: it batches an
API whose input is a list, so the front would have to send lists, and it waits up to a
latency budget to fill a batch, where ranking what already waits needs no wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

MAX_THREADS = 64
Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs `process` over the items submitted while the previous batch ran.

    `process(items)` returns one result per item, in order. When it raises on a batch, the
    items are processed one by one, so that one bad item fails its own request only.
    `threads` batches run at once; it may be changed while serving (at most MAX_THREADS).
    """

    def __init__(
        self, process: Callable[[list[Item]], list[Result]], max_size: int, threads: int = 1
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size: expected at least 1, got {max_size}")
        self.process = process
        self.max_size = max_size
        self.threads = threads
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drains = 0  # `_drain` tasks running, counted inside them (no await between)
        self._tasks: set[asyncio.Task[None]] = set()  # references, so none is collected
        # Threads start when first needed, so the pool's bound costs nothing until used.
        self._pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="rank-batch")

    @property
    def threads(self) -> int:
        return self._threads

    @threads.setter
    def threads(self, value: int) -> None:
        if not 1 <= value <= MAX_THREADS:
            raise ValueError(f"threads: expected 1 to {MAX_THREADS}, got {value}")
        self._threads = value

    async def submit(self, item: Item) -> Result:
        """The item's result, computed in the next batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if self._drains < self.threads:
            self._drains += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        """Take batches from the waiting items until none waits (one per thread at a time)."""
        loop = asyncio.get_running_loop()
        try:
            await self._drain_waiting(loop)
        finally:  # before any other item is submitted: the next one starts a drain
            self._drains -= 1

    async def _drain_waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_size]
            del self._waiting[: self.max_size]
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self._pool, self._outcomes, items)
            except Exception as error:  # a broken `process`: fail the batch, not the loop
                logger.exception("a batch of %d failed", len(items))
                results = [error] * len(items)
            for (_, future), outcome in zip(batch, results, strict=True):
                if future.done():  # the client went away meanwhile
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _outcomes(self, items: list[Item]) -> list[Result | Exception]:
        """The batch's results, or each item's own result or exception."""
        try:
            results = self.process(items)
        except Exception as error:
            if len(items) == 1:
                return [error]
            logger.warning("a batch of %d failed (%s): one by one", len(items), error)
            return [self._outcomes([item])[0] for item in items]
        if len(results) != len(items):
            raise RuntimeError(f"batch of {len(items)} gave {len(results)} results")
        return list(results)

    def close(self) -> None:
        """Stop the worker threads once the running batches are done."""
        self._pool.shutdown(wait=True, cancel_futures=True)
