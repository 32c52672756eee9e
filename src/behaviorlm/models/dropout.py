"""Dropout whose masks are cheap to draw on the CPU.

``torch.nn.functional.dropout`` draws its mask on the CPU with ``bernoulli_``, one call of the
generator per element: on a 2-core machine that took about a third of a ``sasrec`` training
step (``benchmarks/RESULTS.md``, "Dropout masks from a fast generator"). Here a CPU mask
comes from raw 64-bit words of NumPy's SFC64 generator, four 16-bit draws per word: an
element is kept where its draw is at least ``round(p * 65536)``, so it is dropped with
probability ``p`` to within ``2 ** -17``. Each mask's generator is seeded from torch's
default generator, so ``torch.manual_seed`` makes the masks reproducible, as it does for
torch's own dropout. On a GPU (and outside training) this is plain ``functional.dropout``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

#: Draws per 64-bit word of the generator (16 bits each).
_DRAWS_PER_WORD = 4
_LEVELS = 1 << 16


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A CPU boolean tensor of ``shape``, each element True (kept) with probability ``1 - p``.

    ``p`` counts in steps of ``2 ** -16``: a rate below ``2 ** -17`` drops nothing, and near 1
    the kept share is off by up to ``2 ** -17`` (at ``p = 0.999``, 0.00101 kept, not 0.001).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> mask = keep_mask((1000, 100), 0.25)
    >>> mask.shape, round(float(mask.float().mean()), 2)
    (torch.Size([1000, 100]), 0.75)
    >>> _ = torch.manual_seed(0)
    >>> bool((keep_mask((1000, 100), 0.25) == mask).all())  # the same seed, the same mask
    True
    """
    n = int(np.prod(shape))
    seed = int(torch.randint(0, 2**62, (1,)))  # from torch's default generator
    words = np.random.SFC64(seed).random_raw(-(-n // _DRAWS_PER_WORD))
    draws = np.asarray(words, dtype=np.uint64).view(np.uint16)[:n]
    return torch.from_numpy(draws >= round(p * _LEVELS)).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``functional.dropout(x, p, training)``, with the mask of :func:`keep_mask` on the CPU.

    Kept elements are scaled by ``1 / (1 - p)``, as torch does.

    Examples
    --------
    >>> x = torch.ones(4, 5)
    >>> bool((dropout(x, 0.5, training=False) == x).all())
    True
    >>> y = dropout(x, 0.5, training=True)
    >>> sorted(set(y.flatten().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """
    if not training or p == 0.0 or x.device.type != "cpu":
        return functional.dropout(x, p, training)
    if p == 1.0:
        return x * 0.0
    scale = keep_mask(x.shape, p).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` with the fast CPU masks of :func:`dropout`.

    Examples
    --------
    >>> Dropout(0.1).eval()(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout(input, self.p, self.training)
