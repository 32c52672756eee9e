"""Data-parallel training across the processes of a ``torchrun`` launch.

Every rank builds the same training set and draws the same shuffled batch order from the
run's seed; each global batch of ``batch_size`` rows is then dealt out row by row, so rank
``r`` trains on rows ``r, r + W, r + 2W, ...`` (about ``batch_size / W`` rows of similar
length). DistributedDataParallel (DDP) averages the gradients over the ``W`` ranks before the
optimiser step, and each rank weights its loss by its share of the global batch's targets
(:meth:`World.shard`), so the averaged gradient is the gradient of the global batch's mean loss:
the steps, the learning-rate schedule and the model match a single process up to the order
of floating-point sums. Only rank 0 validates, reads and writes the run directory and shows
progress; what it decides (validation results, the resumed state) is broadcast to the rest.

The process group uses gloo for CPU tensors and, when every local rank can have a GPU of its
own, NCCL for CUDA tensors (``"cpu:gloo,cuda:nccl"``; :func:`own_gpus`). The command line
reads the launcher's environment (``RANK``, ``WORLD_SIZE``, ...); it calls :func:`start` and,
at the end, :func:`finish`. A process group started some other way is read by
:func:`current_world`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from behaviorlm.schema import Int

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a training run (one process: the defaults).

    Attributes
    ----------
    rank, size : int
        Global rank of this process and number of processes.
    local_rank, local_size : int
        Rank among the processes of this machine and their number.

    Examples
    --------
    >>> World().is_main, World(rank=1, size=2).is_main
    (True, False)
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the rank that validates, writes files and prints."""
        return self.rank == 0

    def threads(self, cores: int) -> int:
        """Torch threads of this process when the machine's ``cores`` are shared by its ranks.

        Examples
        --------
        >>> World().threads(8), World(size=4, local_size=4).threads(8)
        (8, 2)
        """
        return max(1, cores // self.local_size)

    def shard(self, batch: Int, item_counts: Int, action_counts: Int) -> tuple[Int, float, float]:
        """This rank's rows of the global batch ``batch`` and its two loss weights.

        The rows are ``batch[rank::size]``. A rank's item (action) loss is a mean over its own
        item (action) targets; weighting it by ``size * (its targets) / (the batch's targets)``
        makes the average over ranks (what DDP does to gradients) the mean over the global
        batch. ``item_counts`` and ``action_counts`` hold the targets of every training row. A
        rank left without rows (a batch smaller than the world) trains on one row with weight
        0, so that every rank still takes part in the gradient averaging. One process gets the
        whole batch and weights of exactly 1.

        Examples
        --------
        >>> batch, items, actions = np.array([0, 1, 2]), np.array([1, 3, 4]), np.array([2, 3, 4])
        >>> World(rank=0, size=2).shard(batch, items, actions)  # rows 0 and 2: 5 of 8, 6 of 9
        (array([0, 2]), 1.25, 1.3333333333333333)
        >>> World(rank=1, size=2).shard(np.array([2]), items, actions)
        (array([2]), 0.0, 0.0)
        >>> World().shard(batch, items, actions)
        (array([0, 1, 2]), 1.0, 1.0)
        """
        if self.size == 1:
            return batch, 1.0, 1.0
        rows = batch[self.rank :: self.size]
        if len(rows) == 0:
            return batch[:1], 0.0, 0.0

        def weight(counts: Int) -> float:
            total = int(counts[batch].sum())
            return self.size * int(counts[rows].sum()) / total if total else 0.0

        return rows, weight(item_counts), weight(action_counts)

    def wrap(self, module: nn.Module) -> DataParallel:
        """The runner of ``module``'s training steps (see :class:`DataParallel`)."""
        return DataParallel(module, self)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``values`` over the ranks (float64).

        Examples
        --------
        >>> World().sum(np.array([1.5, 2.0]))
        array([1.5, 2. ])
        """
        if self.size == 1:
            return np.asarray(values, dtype=np.float64)
        tensor = torch.from_numpy(np.array(values, dtype=np.float64))
        dist.all_reduce(tensor)
        return tensor.numpy()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (so that all ranks take the same branch).

        Examples
        --------
        >>> World().any(False)
        False
        """
        return bool(self.sum(np.array([float(flag)]))[0] > 0) if self.size > 1 else flag

    def from_main(self, make: Callable[[], T]) -> T:
        """``make()`` evaluated on rank 0 only, its result sent to every rank.

        The value travels between the run's own processes (pickled in memory, never a file).

        Examples
        --------
        >>> World().from_main(lambda: {"NDCG@10": 0.5})
        {'NDCG@10': 0.5}
        """
        if self.size == 1:
            return make()
        box: list[Any] = [make() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return cast(T, box[0])


class _Step(nn.Module):
    """DDP needs a ``forward`` to watch: this one runs a training step's loss computation.

    The loss uses more of the model than ``encode`` (the tied output embeddings, the action
    head), so the whole computation runs inside the wrapped forward; DDP then sees every
    parameter the loss touched and which ones it did not.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, compute: Callable[[], Any]) -> Any:
        return compute()


class DataParallel:
    """Runs the loss computation of each training step so that backward averages gradients.

    With one process it just calls the computation. With several, the module is wrapped in
    :class:`torch.nn.parallel.DistributedDataParallel` (which broadcasts rank 0's weights
    when it is built). Parameters that a step leaves unused are allowed, e.g. the action head
    when its loss weight is 0 or the embeddings of a feature group that is switched off; DDP
    finds them by walking each step's graph (and says once per rank when there were none).

    Examples
    --------
    >>> runner = World().wrap(torch.nn.Linear(2, 1))
    >>> runner(lambda: 1 + 1)
    2
    """

    def __init__(self, module: nn.Module, world: World) -> None:
        self._ddp: DistributedDataParallel | None = None
        if world.size > 1:
            device = next(module.parameters()).device
            self._ddp = DistributedDataParallel(
                _Step(module),
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,
            )

    def __call__(self, compute: Callable[[], T]) -> T:
        """``compute()``, whose loss tensors then backpropagate through DDP's averaging."""
        if self._ddp is None:
            return compute()
        return cast(T, self._ddp(compute))


_launched: World | None = None


def own_gpus(local_size: int) -> bool:
    """Whether each of the ``local_size`` processes of this machine can have a GPU of its own,
    with NCCL between them: then the process group carries CUDA tensors through NCCL, and a
    run's ``train.device = "auto"`` trains on the GPUs.

    Examples
    --------
    >>> own_gpus(1) == (torch.cuda.is_available() and dist.is_nccl_available())
    True
    """
    return (
        torch.cuda.is_available()
        and local_size <= torch.cuda.device_count()
        and dist.is_nccl_available()
    )


def start(rank: int, size: int, local_rank: int = 0, local_size: int = 1) -> World:
    """Join the process group of a launch (``torchrun``) and remember this process's place.

    The rendezvous (``MASTER_ADDR``, ``MASTER_PORT``) is read by torch's ``env://`` method.
    CPU tensors go through gloo; when every local rank can have a GPU of its own, CUDA tensors
    go through NCCL and the process uses GPU ``local_rank``.
    """
    global _launched
    backend = "gloo"
    if own_gpus(local_size):
        torch.cuda.set_device(local_rank)
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=size)
    _launched = World(rank=rank, size=size, local_rank=local_rank, local_size=local_size)
    return _launched


def current_world() -> World:
    """The world of this process: from :func:`start`, else from an initialised process group.

    Examples
    --------
    >>> current_world()
    World(rank=0, size=1, local_rank=0, local_size=1)
    """
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    if _launched is not None:
        return _launched
    # a group started by the caller: the machine's share as the launcher (torchrun) gives it
    env = os.environ
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        local_size=int(env.get("LOCAL_WORLD_SIZE", 1)),
    )


def finish(status: int) -> NoReturn:
    """End a distributed worker: wait for every rank, leave the group, exit with ``status``.

    The exit bypasses the interpreter's teardown (``os._exit``): with this torch build, a gloo
    worker sometimes aborts while the interpreter shuts down even after a barrier and
    ``destroy_process_group`` (about one run in eight), which turns a finished run into a
    crash that ``torchrun`` reports as a failure. Every file of the run is closed by then, so
    only the output streams need flushing. After a failure (``status != 0``) other ranks may
    be stuck in a collective, so there is no barrier: ``torchrun`` stops them.
    """
    rank = current_world().rank
    if status == 0 and dist.is_initialized():
        try:
            dist.barrier()
            dist.destroy_process_group()
        except RuntimeError as exc:  # another rank died after its training
            print(f"behaviorlm: error: rank {rank}: {exc}", file=sys.stderr)
            status = 1
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed or broken pipe: nothing more to say
            stream.flush()
    os._exit(status)
