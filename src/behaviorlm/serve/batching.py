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

A :class:`Lane` runs slow calls that are not batched (explanations, influence) one at a time
on a thread of its own, with the same bound on waiting calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
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
        # None: a wake-up from stop()
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]] | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._stopping = False

    async def __aenter__(self) -> Batcher[T, R]:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Start the worker (in the running event loop)."""
        if self._worker is None:
            self._stopping = False
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
            self._worker = asyncio.get_running_loop().create_task(self._run(self._thread))

    async def stop(self) -> None:
        """Stop: new items are refused, the batch that runs finishes and is answered, items
        still waiting fail with :class:`OverloadedError`, and the worker thread is joined
        (so nothing runs on after, for example, the event store is closed)."""
        self._stopping = True
        if self._worker is not None:
            self._queue.put_nowait(None)  # wakes a worker waiting for items
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        self._fail_waiting("the service is shutting down")

    @property
    def pending(self) -> int:
        """Items waiting for a batch."""
        return self._queue.qsize()

    async def submit(self, item: T) -> R:
        """The answer for ``item``, computed in a batch with whatever else is waiting."""
        if self._worker is None and not self._stopping:
            raise RuntimeError("the batcher is not started")
        if self._stopping or self._worker is None or self._worker.done():
            raise OverloadedError("the service is shutting down")
        if self._queue.qsize() >= self.max_pending:
            raise OverloadedError(f"{self._queue.qsize():,} requests are waiting; retry shortly")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    def _fail_waiting(self, why: str) -> None:
        while not self._queue.empty():
            entry = self._queue.get_nowait()
            if entry is not None and not entry[1].done():
                entry[1].set_exception(OverloadedError(why))

    async def _run(self, thread: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                first = await self._queue.get()
                if first is None:  # stop() woke us
                    break
                batch = [first]
                while len(batch) < self.max_batch and not self._queue.empty():
                    entry = self._queue.get_nowait()
                    if entry is not None:
                        batch.append(entry)
                batch = [(item, future) for item, future in batch if not future.cancelled()]
                if batch:
                    await self._answer(loop, thread, batch)
        finally:  # stopped, or the worker itself failed: nobody may wait forever
            self._stopping = True
            self._fail_waiting("the service is shutting down")

    async def _answer(
        self,
        loop: asyncio.AbstractEventLoop,
        thread: ThreadPoolExecutor,
        batch: list[tuple[T, asyncio.Future[R]]],
    ) -> None:
        """Run one batch in the worker thread and hand each caller its answer."""
        answers: Sequence[R | Exception]
        try:
            if self.observe is not None:
                self.observe(len(batch))
            items = [item for item, _ in batch]
            answers = await loop.run_in_executor(thread, self.handle, items)
            if len(answers) != len(batch):
                raise RuntimeError(
                    f"the batch handler gave {len(answers)} answers for {len(batch)} items"
                )
        except Exception as exc:  # the whole batch failed: every caller sees why
            answers = [exc] * len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)


class Lane:
    """Blocking calls of one kind (explanations, influence), run one at a time on a worker
    thread of their own: a burst of them waits here, holding none of the threads of the
    server's pool, where health checks and the other blocking routes run. At most
    ``max_pending`` calls wait; :meth:`run` raises :class:`OverloadedError` beyond it.

    Examples
    --------
    >>> import asyncio
    >>> async def demo() -> list[int]:
    ...     lane = Lane(max_pending=8)
    ...     lane.start()
    ...     try:
    ...         return list(await asyncio.gather(*(lane.run(partial(pow, 2, x)) for x in range(3))))
    ...     finally:
    ...         await lane.stop()
    >>> asyncio.run(demo())
    [1, 2, 4]
    """

    def __init__(self, *, max_pending: int = 1024) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be positive, got {max_pending}")
        self.max_pending = max_pending
        self._thread: ThreadPoolExecutor | None = None
        self._waiting = 0

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lane")

    async def stop(self) -> None:
        """Stop: new calls are refused, the call that runs finishes, calls still waiting fail
        with :class:`OverloadedError`, and the worker thread is joined."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, partial(thread.shutdown, wait=True, cancel_futures=True)
            )

    async def run(self, call: Callable[[], R]) -> R:
        """The result of ``call()``, run on the lane's thread after the calls before it."""
        if self._thread is None:
            raise OverloadedError("the service is shutting down")
        if self._waiting >= self.max_pending:
            raise OverloadedError(f"{self._waiting:,} requests are waiting; retry shortly")
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except asyncio.CancelledError:
            if self._thread is None:  # stop() cancelled it: a 503, as the batchers give
                raise OverloadedError("the service is shutting down") from None
            raise
        finally:
            self._waiting -= 1
