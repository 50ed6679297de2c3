"""Requests that arrive together are ranked together.

Under load, /rank requests wait while one is ranked. `Batcher` hands everything that waits
(up to `max_size`) to one `Engine.rank_batch` call: eligibility and scoring then run once,
as one matrix product and one pass of each numpy operation over the batch, instead of once
per request, where numpy's per-call overheads dominate at catalog sizes of tens of thousands
of offers. Nothing waits on purpose: a batch starts as soon as the previous one is done, so
a lone request is ranked at once and a busy server ranks many at a time.

Batches run on one worker thread, off the event loop: numpy releases the GIL on arrays of
this size, so the loop keeps reading and answering requests on the other core meanwhile.

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

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs `process` over the items submitted while the previous batch ran.

    `process(items)` returns one result per item, in order. When it raises on a batch, the
    items are processed one by one, so that one bad item fails its own request only.
    """

    def __init__(
        self, process: Callable[[list[Item]], list[Result]], max_size: int, threads: int = 1
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size: expected at least 1, got {max_size}")
        if threads < 1:
            raise ValueError(f"threads: expected at least 1, got {threads}")
        self.process = process
        self.max_size = max_size
        self.threads = threads
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._draining: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rank-batch")

    async def submit(self, item: Item) -> Result:
        """The item's result, computed in the next batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._draining) < self.threads:
            task = loop.create_task(self._drain())
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        return await future

    async def _drain(self) -> None:
        """Take batches from the waiting items until none waits (one per thread at a time)."""
        loop = asyncio.get_running_loop()
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
