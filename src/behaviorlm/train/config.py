"""The ``[train]`` table of a run config: how the shared loop fits a sequence model.

Baselines (pop, itemknn, markov) have no training loop and use none of its settings, but
the table is checked for them too (a setting that could never apply is refused). The
model's own config (``[model]``) holds everything about the network, including ``max_len``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Literal

from behaviorlm.config import check_finite

#: The values of ``train.device``.
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation, schedule, loss and stopping of one training run.

    Attributes
    ----------
    epochs : int
        Passes over the training timelines (the most; early stopping may end sooner).
    batch_size : int
        Timelines per optimiser step (fewer on small training sets, see
        ``min_steps_per_epoch``).
    min_steps_per_epoch : int
        Fewer timelines per step when the training set is small, so that an epoch has at
        least this many optimiser steps: ``min(batch_size, rows // min_steps_per_epoch)``
        rows, at least one (0 = always ``batch_size``). A catalogue with few users otherwise
        gets a handful of updates per epoch: MovieLens-100K's 943 users make 2,412 training
        windows, 19 steps of 128 rows. See :meth:`rows_per_batch`.
    lr, min_lr : float
        Peak learning rate of AdamW, reached after the warm-up, and the floor of the cosine decay.
    weight_decay : float
        AdamW decoupled weight decay of the weight matrices and embeddings (not biases and norms).
    warmup_steps : int
        Optimiser steps spent rising linearly from 0 to ``lr`` (at most a tenth of all steps);
        then the learning rate follows a cosine from ``lr`` to ``min_lr`` over the remaining
        steps of ``epochs`` epochs.
    grad_clip : float
        Largest global gradient norm (0 = no clipping).
    patience : int
        Stop after this many validations without a better validation NDCG@10 (0 = never stop
        early). The best state is restored at the end in any case.
    patience_from : float
        Share of the run, in ``[0, 1)``, before which validations without improvement are
        not counted by ``patience`` (like Keras' ``start_from_epoch``; the best state is
        tracked from the start): the steps of all epochs, or with ``schedule = "budget"`` the
        steps or the clock, whichever is further on. Validation NDCG often stalls while the
        learning rate is high and improves as the schedule decays it; 0 (the default) lets
        patience stop a run at any time.
    eval_every : int
        Validate (full ranking of ``split.valid``) every this many epochs, and after the last.
    valid_users : int
        Validate on a fixed random sample of this many validation rows (0 = all rows).
    valid_exclude_seen : bool
        Validation ranks without the row's history items (true, the default, as
        ``evaluate`` does), or with them (false: RecBole's sequential protocol). Early
        stopping then picks the checkpoint by the protocol that the test reports.
    seed : int
        Seeds the initialisation, the shuffling, dropout and negative sampling of every epoch.
    threads : int
        CPU threads for torch (0 = all cores available to the process).
    device : str
        Where the loop trains and validates: ``"auto"`` (the default: the GPU when torch sees
        one, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Under ``torchrun`` each
        process takes the GPU of its local rank (``"auto"`` when every local rank has one,
        ``"cuda"`` always; ``"cuda:N"`` is refused there). The fitted model is handed back on
        the CPU, where artifacts are loaded, scored, explained and served
        (:func:`behaviorlm.train.device.train_device`).
    bf16 : bool
        Run forward and loss under bfloat16 autocast (on the training device).
    loss : "ce" or "sampled"
        ``"ce"``: softmax cross-entropy over the whole catalogue at every position
        (SASRec+, Klenitskiy & Vasilev 2023). ``"sampled"``: softmax over the target and
        ``num_negatives`` shared sampled items with the log-Q correction (Yi et al. 2019),
        for catalogues too large for a full softmax.
    num_negatives : int
        Negatives per batch of the sampled softmax.
    negatives : "uniform" or "popularity"
        Proposal of the sampled softmax: uniform over items, or proportional to the number of
        training events of each item.
    action_loss_weight : float
        Weight of the next-action cross-entropy (0 = the action head is not trained).
    sliding_windows : bool
        Also train on earlier windows of timelines longer than ``max_len + 1`` events, so
        every event is a target once (otherwise only each timeline's last window is used).
    length_buckets : int
        Group the shuffled timelines into runs of this many batches sorted by length, so that
        a batch of short timelines is cut to its longest row (1 = plain shuffling). Faster per
        epoch but, with batches of alike timelines, it learns less per epoch: on Amazon Beauty
        with equal time (benchmarks/RESULTS.md), 8 buckets ran 1.6x more epochs and still
        ended lower (validation NDCG@10 0.0651 against 0.0668), so the default stays 1.
    weight_average : float
        Decay of an exponential moving average of the weights, updated after every optimiser
        step (0 = off, the default; 0.999: a horizon of about a thousand steps). Validation,
        early stopping, the kept best state and so the artifact use the average; training
        goes on with the live weights (:mod:`behaviorlm.train.averaging`).
    time_budget_s : float
        Stop after this much wall time, keeping the best state so far (0 = no limit).
    schedule : {"epochs", "budget"}
        What the cosine decay runs over: ``epochs`` epochs, or (``budget``) whichever ends
        first of ``epochs`` epochs and ``time_budget_s`` seconds, so that a run cut by its
        time budget still ends at ``min_lr`` on data sets of any size. With ``budget`` the
        learning rate follows the clock, so two runs are no longer step-for-step identical.

    Examples
    --------
    >>> TrainConfig(lr=3e-4).loss
    'ce'
    >>> TrainConfig(epochs=0)
    Traceback (most recent call last):
    ...
    ValueError: train.epochs must be at least 1, got 0
    """

    epochs: int = 200
    batch_size: int = 128
    min_steps_per_epoch: int = 0
    lr: float = 1e-3
    min_lr: float = 0.0
    weight_decay: float = 0.1
    warmup_steps: int = 100
    grad_clip: float = 1.0
    patience: int = 10
    patience_from: float = 0.0
    eval_every: int = 1
    valid_users: int = 0
    valid_exclude_seen: bool = True
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    bf16: bool = False
    loss: Literal["ce", "sampled"] = "ce"
    num_negatives: int = 256
    negatives: Literal["uniform", "popularity"] = "uniform"
    action_loss_weight: float = 0.1
    sliding_windows: bool = True
    length_buckets: int = 1
    weight_average: float = 0.0
    time_budget_s: float = 0.0
    schedule: Literal["epochs", "budget"] = "epochs"

    def __post_init__(self) -> None:
        at_least_one = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "num_negatives": self.num_negatives,
            "length_buckets": self.length_buckets,
        }
        for name, value in at_least_one.items():
            if value < 1:
                raise ValueError(f"train.{name} must be at least 1, got {value}")
        non_negative = {
            "min_lr": self.min_lr,
            "weight_decay": self.weight_decay,
            "grad_clip": self.grad_clip,
            "patience": self.patience,
            "valid_users": self.valid_users,
            "threads": self.threads,
            "action_loss_weight": self.action_loss_weight,
            "time_budget_s": self.time_budget_s,
            "warmup_steps": self.warmup_steps,
            "min_steps_per_epoch": self.min_steps_per_epoch,
        }
        for name, number in non_negative.items():
            if not number >= 0:  # NaN too
                raise ValueError(f"train.{name} must be >= 0, got {number}")
        check_finite(self, "train.")
        if self.loss == "ce":  # the sampler's settings would be ignored without a word
            for f in fields(self):
                if f.name in ("num_negatives", "negatives") and getattr(self, f.name) != f.default:
                    raise ValueError(
                        f"train.{f.name} sets the negatives of train.loss = 'sampled'; with "
                        "the full softmax ('ce') it does nothing: set train.loss = 'sampled', "
                        f"or leave it out (or set it back to its default, {f.default!r})"
                    )
        if not 0 <= self.seed < 2**63:  # torch's and numpy's seeds
            raise ValueError(f"train.seed must be in [0, 2**63), got {self.seed}")
        if not 0.0 <= self.patience_from < 1.0:
            raise ValueError(f"train.patience_from must be in [0, 1), got {self.patience_from}")
        if not 0.0 <= self.weight_average < 1.0:
            raise ValueError(f"train.weight_average must be in [0, 1), got {self.weight_average}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        if self.schedule == "budget" and not self.time_budget_s > 0:
            raise ValueError(
                'train.schedule = "budget" needs a train.time_budget_s above 0 '
                '(without a budget, set train.schedule = "epochs")'
            )
        if not DEVICE.fullmatch(self.device):
            raise ValueError(
                f'train.device must be "auto", "cpu", "cuda" or "cuda:N", got {self.device!r}'
            )
        if self.min_lr > self.lr:
            raise ValueError(f"train.min_lr ({self.min_lr}) must not exceed train.lr ({self.lr})")

    def rows_per_batch(self, rows: int) -> int:
        """Timelines per optimiser step for a training set of ``rows`` timelines.

        Examples
        --------
        >>> config = TrainConfig(batch_size=128, min_steps_per_epoch=64)
        >>> config.rows_per_batch(50_000), config.rows_per_batch(2_412), config.rows_per_batch(10)
        (128, 37, 1)
        >>> TrainConfig(batch_size=128).rows_per_batch(2_100)
        128
        """
        if self.min_steps_per_epoch == 0:
            return self.batch_size
        return max(1, min(self.batch_size, rows // self.min_steps_per_epoch))
