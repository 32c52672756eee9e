"""Rewriting the token components of a sequence model from the outside, with forward hooks.

A token is the sum of one embedding per feature group
(:meth:`behaviorlm.models.neural.TokenEmbedding.components`). Explanations need to scale a
component (integrated gradients) or remove it (group ablation) without touching a model's
maths, so this module puts a forward hook on each component's embedding table that replaces
the table's output. Hooking the tables rather than the summed token also covers models that
read a table directly (``mlp`` reads the item table only). The output layer reads the item
table's *weights*, not its forward, so scoring is never affected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from behaviorlm.models.batch import SequenceBatch
from behaviorlm.models.neural import SequenceModule

#: The embedding table (attribute of ``TokenEmbedding``) behind each feature group (the source
#: table's rows of clicks on search results are search activity: ``explain.groups``).
TABLES: dict[str, str] = {
    "history": "item",
    "search": "query",
    "actions": "action",
    "time": "gap",
    "social": "source",
    "location": "location",
    "device": "device",
}

#: ``edit(group, output)`` -> the replacement, both ``(B, T, D)``.
Edit = Callable[[str, torch.Tensor], torch.Tensor]


def groups_of(module: SequenceModule, batch: SequenceBatch) -> list[str]:
    """Feature groups whose component the model builds for ``batch``, in token order.

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes, build_batch
    >>> from behaviorlm.models.sasrec import SASRecConfig, SASRecModule
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2]], n_items=2)
    >>> sizes = FeatureSizes.of(s)
    >>> groups_of(SASRecModule(sizes, SASRecConfig(dim=8)), build_batch(s, 5, sizes))
    ['history', 'actions', 'time', 'social']
    """
    with torch.no_grad():
        return list(module.tokens.components(batch))


@contextmanager
def edited_components(
    module: SequenceModule, groups: list[str], rows: int, edit: Edit
) -> Iterator[dict[str, int]]:
    """Within the block, the component of every group in ``groups`` is ``edit(group, output)``.

    ``rows`` is the batch size ``B`` of the forward passes run inside the block (the
    query-word table returns ``(B * T, D)``; the edit always sees ``(B, T, D)``). Yields a
    dict counting how often each group's table ran, so callers can check that a forward pass
    read every component exactly once.
    """
    calls = dict.fromkeys(groups, 0)
    handles = []

    def hook_for(group: str) -> Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]:
        def hook(_: nn.Module, __: Any, output: torch.Tensor) -> torch.Tensor:
            calls[group] += 1
            shaped = output.reshape(rows, -1, output.shape[-1])  # (B, T, D)
            return edit(group, shaped).reshape(output.shape)

        return hook

    for group in groups:
        table = getattr(module.tokens, TABLES[group])
        handles.append(table.register_forward_hook(hook_for(group)))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def check_read_once(calls: dict[str, int], what: str) -> None:
    """Raise RuntimeError unless every hooked component was computed exactly once."""
    wrong = {g: n for g, n in calls.items() if n != 1}
    if wrong:
        raise RuntimeError(
            f"{what}: the model computed token components {wrong} times instead of once per "
            "forward pass; it does not read its tokens through TokenEmbedding"
        )
