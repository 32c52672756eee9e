"""Where a training run puts its model and batches (``[train] device``).

The training set and every batch are built on the CPU; the loop moves each batch to the
training device, where the model, its optimiser state and the losses live. Validation scores
there too. When the run ends the model goes back to the CPU: artifacts are written from it,
and scoring, explanations and the service read their inputs on the CPU.
"""

from __future__ import annotations

import torch

from behaviorlm.config import ConfigError
from behaviorlm.train.distributed import World, own_gpus


def train_device(name: str, world: World | None = None) -> torch.device:
    """The device that ``train.device = name`` means for this process.

    ``"auto"`` is the GPU when torch sees one (with several processes: when every local rank
    has one of its own and NCCL runs between them, as the process group decides,
    :func:`behaviorlm.train.distributed.own_gpus`), else the CPU. ``"cuda"`` is GPU 0, or
    with several processes the GPU of the process's local rank.

    Raises
    ------
    ConfigError
        For a GPU that torch does not see, or a GPU index under ``torchrun`` (each process
        takes the GPU of its local rank).

    Examples
    --------
    >>> train_device("cpu")
    device(type='cpu')
    >>> train_device("auto") == (torch.device("cuda:0") if torch.cuda.is_available() else
    ...                          torch.device("cpu"))
    True
    """
    world = world or World()
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "auto":
        name = "cuda" if (count if world.size == 1 else own_gpus(world.local_size)) else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    device = torch.device(name)
    if device.type != "cuda":
        raise ConfigError(f'train.device must be "auto", "cpu", "cuda" or "cuda:N", got {name!r}')
    if device.index is not None and world.size > 1:
        raise ConfigError(
            f"train.device = {name!r} names one GPU, but under torchrun each process takes the "
            'GPU of its local rank: use "cuda" or "auto"'
        )
    index = world.local_rank if device.index is None else device.index
    if index >= count:
        seen = f"{count} GPU{'s' if count != 1 else ''}" if count else "no GPU"
        raise ConfigError(f"train.device = {name!r} needs GPU {index}, but torch sees {seen}")
    return torch.device("cuda", index)
