"""Dynamic batching: concurrent requests share one batched call of the model.

A :class:`Batcher` takes items from any number of concurrent request handlers and hands
them to a batch function (:meth:`behaviorlm.serve.service.Service.recommend_batch`) in one
worker thread of its own, so the event loop stays free. (Always the same thread: spread over
a pool's threads, the model's allocations land in one malloc arena per thread, and the
server's memory grew by 160 MiB in 20 s of load.) There is no added wait: a batch is whatever
queued while the previous one ran (at most ``max_batch``), so under light load every request
runs alone at once, and under heavy load the per-request cost of the model falls with the
batch size instead of requests queueing behind one another. Item ``i`` of a batch gets
answer ``i``, a result or an exception raised in its handler only.

When more than ``max_pending`` items wait, :meth:`Batcher.submit` refuses the new one at
once (:class:`OverloadedError`, a 503 with Retry-After in the service) instead of letting
latency grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class OverloadedError(Exception):
    """More than ``max_pending`` items are waiting: try again shortly."""


class Batcher(Generic[T, R]):
    """Runs ``handle`` on batches of the items submitted concurrently.

    Parameters
    ----------
    handle : callable
        ``handle(items) -> answers``, one answer per item in order: a result, or an
        exception to raise in that item's caller. Runs in a worker thread.
    max_batch : int
        Most items in one call of ``handle``.
    max_pending : int
        Most items waiting; :meth:`submit` raises :class:`OverloadedError` beyond it.
    observe : callable, optional
        Called with each batch's size (for metrics).

    Examples
    --------
    >>> import asyncio
    >>> async def demo() -> list[int]:
    ...     async with Batcher(lambda xs: [2 * x for x in xs], max_batch=8) as batcher:
    ...         return list(await asyncio.gather(*(batcher.submit(x) for x in range(4))))
    >>> asyncio.run(demo())
    [0, 2, 4, 6]
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Sequence[R | Exception]],
        *,
        max_batch: int = 64,
        max_pending: int = 1024,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError(
                f"max_batch and max_pending must be positive, got {max_batch}, {max_pending}"
            )
        self.handle = handle
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.observe = observe
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> Batcher[T, R]:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Start the worker (in the running event loop)."""
        if self._worker is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
            self._worker = asyncio.get_running_loop().create_task(self._run(self._thread))

    async def stop(self) -> None:
        """Stop the worker; items still waiting fail with :class:`OverloadedError`."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(OverloadedError("the service is shutting down"))

    @property
    def pending(self) -> int:
        """Items waiting for a batch."""
        return self._queue.qsize()

    async def submit(self, item: T) -> R:
        """The answer for ``item``, computed in a batch with whatever else is waiting."""
        if self._worker is None:
            raise RuntimeError("the batcher is not started")
        if self._queue.qsize() >= self.max_pending:
            raise OverloadedError(f"{self._queue.qsize():,} requests are waiting; retry shortly")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _run(self, thread: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(item, future) for item, future in batch if not future.cancelled()]
            if not batch:
                continue
            if self.observe is not None:
                self.observe(len(batch))
            try:
                items = [item for item, _ in batch]
                answers = await loop.run_in_executor(thread, self.handle, items)
                if len(answers) != len(batch):
                    raise RuntimeError(
                        f"the batch handler gave {len(answers)} answers for {len(batch)} items"
                    )
            except asyncio.CancelledError:  # stopped while the batch ran
                for _, future in batch:
                    if not future.done():
                        future.set_exception(OverloadedError("the service is shutting down"))
                raise
            except Exception as exc:  # the whole batch failed: every caller sees why
                answers = [exc] * len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
