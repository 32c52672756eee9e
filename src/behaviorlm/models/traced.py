"""A model's ``encode_last`` as a TorchScript trace, for serving small batches.

A service ranks a few timelines at a time. An eager forward pass of such a batch is dozens of
small operations, each entered from Python, and each gives up the interpreter lock
while it runs and takes it back after. In a server, another thread (the event loop) holds
the lock much of the time, so every operation of the model's thread waits for it, and the
hand-overs of the lock cost CPU too. A trace runs the whole pass in TorchScript's
interpreter, which gives up the lock once for the pass and has less overhead per operation
(``benchmarks/traced_encoder.py`` measures both, alone and beside a busy thread;
``benchmarks/RESULTS.md``).

A trace records the operations of one call, with Python's control flow as it went then. A
module may be traced only if its ``encode_last`` takes any batch size and length in the same
operations (:attr:`behaviorlm.models.neural.SequenceModule.traceable`): sizes are read from
tensors, never turned into Python numbers, and the only branch on the data is whether the
batch has padding. That branch is a key here: one trace for batches with padding, one for
batches without. Each trace is checked against the eager pass on its first batch; a
mismatch, or a torch without ``torch.jit``, leaves the eager pass in place.

Parameters are shared with the module, not copied: a trace follows weights loaded in
place (``load_state_dict``); a deep copy of the encoder starts without traces. Traces are
made and run in evaluation mode only (dropout off): in training mode the eager pass runs. A
trace does not run Python forward hooks, so while the module or a part of it has one
(explanations edit embedding components through hooks) the eager pass runs too. Each trace
is also checked on a second batch of another size and length, so a size read as a Python
number (which a trace would keep fixed) shows as a difference.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import fields
from typing import TYPE_CHECKING

import torch
from torch import nn

from behaviorlm.models.batch import SequenceBatch

if TYPE_CHECKING:
    from behaviorlm.models.neural import SequenceModule

log = logging.getLogger(__name__)

#: Largest absolute difference between a trace and the eager pass accepted at tracing.
TOLERANCE = 1e-4

FIELDS = tuple(f.name for f in fields(SequenceBatch))


def plain_interpreter() -> AbstractContextManager[object]:
    """TorchScript's plain interpreter for the block: no profiling runs and no graphs
    specialised per input shape (nothing to do on a torch without ``torch.jit``)."""
    switch = getattr(torch.jit, "optimized_execution", None)
    return nullcontext() if switch is None else switch(False)


class _EncodeLast(nn.Module):
    """``module.encode_last`` of a batch given as its tensors (what a trace takes)."""

    def __init__(self, module: SequenceModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = SequenceBatch(**dict(zip(FIELDS, tensors, strict=True)))
        out: torch.Tensor = self.module.encode_last(batch)
        return out


class TracedEncoder:
    """``encode_last`` of a traceable module through TorchScript traces, eager as a fallback.

    Call it like ``module.encode_last(batch)``, under ``torch.no_grad`` or
    ``torch.inference_mode``. Safe to call from several threads.

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes, build_batch
    >>> from behaviorlm.models.sasrec import SASRecConfig, SASRecModule
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2, 3], [2]], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> module = SASRecModule(sizes, SASRecConfig(dim=8, heads=2)).eval()
    >>> encoder = TracedEncoder(module)
    >>> batch = build_batch(s, 50, sizes)
    >>> with torch.inference_mode():
    ...     bool(torch.allclose(encoder(batch), module.encode_last(batch), atol=1e-6))
    True
    >>> encoder.layouts  # one trace: batches with padding
    1
    """

    def __init__(self, module: SequenceModule) -> None:
        if not module.traceable:
            raise ValueError(f"{type(module).__name__} is not traceable")
        self.module = module
        self._parts = list(module.modules())  # the module and every submodule, for hooks
        self._traces: dict[bool, Callable[..., torch.Tensor] | None] = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, object]) -> TracedEncoder:
        """A copy for a copy of the module, without traces (they run the original's weights)."""
        return TracedEncoder(copy.deepcopy(self.module, memo))

    @property
    def layouts(self) -> int:
        """Batch layouts (with padding, without) traced so far."""
        with self._lock:
            return sum(1 for trace in self._traces.values() if trace is not None)

    def __call__(self, batch: SequenceBatch) -> torch.Tensor:
        if self.module.training or self._hooked():
            # a trace runs without dropout and skips hooks: the eager pass has both
            eager: torch.Tensor = self.module.encode_last(batch)
            return eager
        # padding in the columns the module reads: one that keeps its last max_len columns
        # (sasrec) masks no padding that lies only in the columns it drops, so a batch with
        # such padding would trace the unpadded layout under the padded key
        width: int | None = getattr(self.module, "max_len", None)
        read = batch.mask if width is None else batch.mask[:, -width:]
        full = bool(read.all())
        if full not in self._traces:
            with self._lock:
                if full not in self._traces:
                    self._traces[full] = self._trace(batch)
        trace = self._traces[full]
        if trace is None:
            out: torch.Tensor = self.module.encode_last(batch)
            return out
        with plain_interpreter():
            return trace(*(getattr(batch, name) for name in FIELDS))

    def _hooked(self) -> bool:
        """Whether a forward hook is on the module or any part of it (explanations edit
        embedding components through hooks), or on every module."""
        if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
            return True
        return any(m._forward_hooks or m._forward_pre_hooks for m in self._parts)

    def _trace(self, batch: SequenceBatch) -> Callable[..., torch.Tensor] | None:
        """A trace on ``batch`` checked against the eager pass, or None where that fails."""
        tensors = tuple(getattr(batch, name) for name in FIELDS)
        other = _reshaped(batch)
        try:
            with warnings.catch_warnings():
                # tracing warns of each size it reads and of its own deprecation; the
                # module's sizes are general (SequenceModule.traceable) and the result
                # is checked below
                warnings.simplefilter("ignore")
                trace = torch.jit.trace(  # type: ignore[no-untyped-call]
                    _EncodeLast(self.module), tensors, check_trace=False
                )
            difference = 0.0
            for example in (batch, other):  # the traced shape and another one
                with plain_interpreter():
                    traced = trace(*(getattr(example, name) for name in FIELDS))
                eager = self.module.encode_last(example)
                if eager.numel():
                    difference = max(difference, float((traced - eager).abs().max()))
        except Exception as exc:  # a torch without torch.jit, or an untraceable operation
            log.warning("encode_last stays eager: tracing failed (%s)", exc)
            return None
        if not difference <= TOLERANCE:
            log.warning("encode_last stays eager: its trace differs by %.3g", difference)
            return None
        return trace  # type: ignore[no-any-return]


def _reshaped(batch: SequenceBatch) -> SequenceBatch:
    """``batch`` with its first row once more and, where it has two columns or more, without
    its oldest column: another size and length with the same padding layout (a trace made
    on ``batch`` must give the eager result on it too)."""
    rows = torch.cat([torch.arange(batch.shape[0]), torch.zeros(1, dtype=torch.long)])
    out = SequenceBatch(**{name: getattr(batch, name)[rows] for name in FIELDS})
    if out.shape[1] > 1:
        cut = out.columns(slice(1, None))
        if bool(cut.mask.all()) == bool(batch.mask.all()):  # the same trace serves it
            return cut
    return out
