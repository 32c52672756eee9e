"""The shared training loop of the sequence models.

``fit_model`` trains any :class:`behaviorlm.models.neural.NeuralRecommender` the same way
(minGPT's ``trainer.py``): the training timelines are built once as padded arrays
(:class:`behaviorlm.train.batches.TrainingSet`), each epoch shuffles them with the run's seed
and slices batches; AdamW with a linear warm-up and a cosine decay, gradient clipping,
validation NDCG@10 with full ranking after every ``eval_every`` epochs, early stopping with
patience, the best weights restored at the end, and a checkpoint after every epoch from which
a run resumes exactly (the checkpoint keeps the run's clock, so the time budget and the
schedule that follows it go on where they were; an epoch that the budget cut is saved as it
ended, so resuming with the same budget trains nothing more). With ``weight_average`` the loop
keeps a moving average of the weights (:mod:`behaviorlm.train.averaging`) and validates, keeps
and hands back the average.
Baselines are fitted directly (they have no loop).

Every epoch shuffles with numpy seeded from ``(seed, epoch)``, and every batch reseeds torch
(dropout masks) and the negatives from the epoch's seed and the batch's place, so a resumed
run draws the same shuffles, masks and negatives as an uninterrupted one, also where it
finishes an epoch that the budget cut.

Under ``torchrun`` the same loop trains with DistributedDataParallel: the ranks split every
batch and average their gradients, so they train the model one process would; rank 0 alone
validates and writes the run directory (:mod:`behaviorlm.train.distributed`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch.profiler import record_function

from behaviorlm.config import ConfigError, to_dict
from behaviorlm.evaluate.runner import evaluate, targets_in_history
from behaviorlm.files import write_whole
from behaviorlm.models.base import Recommender
from behaviorlm.models.neural import NeuralRecommender, SequenceModule
from behaviorlm.progress import status_console
from behaviorlm.schema import EvalSet, Split
from behaviorlm.train.averaging import WeightAverage
from behaviorlm.train.batches import TrainingSet
from behaviorlm.train.checkpoint import Checkpoint
from behaviorlm.train.config import TrainConfig
from behaviorlm.train.device import train_device
from behaviorlm.train.distributed import World, current_world
from behaviorlm.train.folder import (
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    check_unfinished,
    set_aside,
)
from behaviorlm.train.losses import (
    NegativeSampler,
    action_loss,
    full_softmax_loss,
    item_loss_mask,
    sampled_softmax_loss,
)

#: Names of the parts of a training step (and of validation) as torch's profiler shows them
#: (``benchmarks/profile_train.py``).
REGIONS = {
    part: f"behaviorlm.{part}" for part in ("batch", "forward", "backward", "optimizer", "validate")
}
#: Train settings that may differ between a run and its resumption.
RESUMABLE_CHANGES = frozenset({"time_budget_s", "threads", "device", "patience", "patience_from"})


def validate(model: Recommender, evalset: EvalSet, exclude_seen: bool = True) -> dict[str, float]:
    """Validation NDCG@10 and HR@10 with full ranking (seen items excluded unless
    ``exclude_seen`` is false).

    Examples
    --------
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> from behaviorlm.schema import Sequences
    >>> pop = Pop(PopConfig()).fit(Sequences.from_lists([[1, 2], [2]], n_items=3))
    >>> valid = EvalSet(Sequences.from_lists([[1]], n_items=3), np.array([0, 1]),
    ...                 np.array([2]), np.array([0]))
    >>> validate(pop, valid)
    {'NDCG@10': 1.0, 'HR@10': 1.0}
    """
    k = min(10, model.n_items)  # a list of the whole catalogue: @n_items equals @10
    result = evaluate(model, evalset, ks=(k,), exclude_seen=exclude_seen)
    return {"NDCG@10": result.metrics["NDCG"][k], "HR@10": result.metrics["HR"][k]}


def available_cores() -> int:
    """CPU cores this process may run on.

    Examples
    --------
    >>> available_cores() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (0 = all cores), then restore the old count.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    old = torch.get_num_threads()
    torch.set_num_threads(threads or available_cores())
    try:
        yield
    finally:
        torch.set_num_threads(old)


def lr_at(step: int, total_steps: int, config: TrainConfig, spent: float = 0.0) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up, then cosine decay.

    The warm-up lasts ``warmup_steps``, but at most a tenth of all steps (or of the time
    budget), so that a short run on a small data set does not spend most of its time warming
    up. ``spent`` is the share of the time budget used so far (``schedule = "budget"``): the
    warm-up and the decay go by whichever is further on, the steps or the clock (in whole
    steps: a tenth of the budget counts as the warm-up's steps, and after it ``spent`` of the
    budget as that share of all steps). Both are measured from the start of the run, so a
    run that keeps ahead of its budget's pace follows its steps alone and repeats with its
    seed.

    Examples
    --------
    >>> cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=10)
    >>> [round(lr_at(s, 101, cfg), 3) for s in (0, 9, 10, 55, 100)]
    [0.1, 1.0, 1.0, 0.5, 0.0]
    >>> [round(lr_at(s, 21, cfg), 3) for s in (0, 1, 2, 20)]  # warm-up cut to 2 steps
    [0.5, 1.0, 1.0, 0.0]
    >>> round(lr_at(55, 101, cfg, spent=0.3), 3)  # ahead of the clock: the steps count
    0.5
    >>> round(lr_at(10, 101, cfg, spent=0.55), 3)  # behind it: as if at step 55
    0.5
    >>> round(lr_at(2, 101, cfg, spent=0.049), 3)  # half of a tenth of the budget: step 4
    0.5
    """
    last = max(1, total_steps - 1)
    warmup = min(config.warmup_steps, total_steps // 10)
    if step < warmup:  # the clock's warm-up is a tenth of the budget
        at = max(step, math.floor(spent / 0.1 * warmup))
        if at < warmup:
            return config.lr * (at + 1) / warmup
    # the step the run is at: its own, or where the clock says it should be (whole steps of
    # the budget's pace), whichever is further on; a run ahead of the clock never reads it
    at = max(step, math.floor(spent * last))
    done = min(1.0, max(0, at - warmup) / max(1, last - warmup))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * done))


def parameter_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: matrices and embeddings decay, biases and norm gains do not.

    Examples
    --------
    >>> groups = parameter_groups(torch.nn.Linear(3, 2), weight_decay=0.1)
    >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
    [(1, 0.1), (1, 0.0)]
    """
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    keep = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]


def _epoch_of(line: str) -> int | None:
    """The epoch of a line of ``metrics.jsonl``; None for a blank or half-written one (a run
    stopped while writing it).

    Examples
    --------
    >>> _epoch_of('{"epoch": 3, "loss": 1.5}'), _epoch_of('{"epoch": 4, "lo'), _epoch_of("")
    (3, None, None)
    """
    try:
        return int(json.loads(line)["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_whole(path, json.dumps(data, indent=2, default=str) + "\n")


#: How a checkpoint's identity names its parts in a message.
IDENTITY_NAMES = {
    "model_config": "model",
    "training_rows": "the data set's training rows",
    "training_data": "the training and validation events (a digest)",
    "training_context": "the events' values, devices, locations and query words (a digest)",
    "n_items": "the data set's items",
    "target_actions": "split.target_actions",
}


#: How a run that had stopped goes on when resumed, by the reason it stopped.
_GO_ON = {
    "time_budget": "raise train.time_budget_s (now {budget:,g} s) above the {used:,.1f} s it "
    "has run{unbounded} to go on",
    "early_stopping": "raise train.patience (0: none) to go on",
}
#: What a resumed run that cannot go on says (its epochs are done, or its last one was cut).
_OVER = "the run is over: train anew (without --resume) for more epochs"


def identity_changes(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between a checkpoint's identity and this run's, a setting each.

    Examples
    --------
    >>> identity_changes({"train": {"epochs": 4, "lr": 0.1}}, {"train": {"epochs": 2, "lr": 0.1}})
    ['train.epochs: 4 in the checkpoint, 2 now']
    """
    changes = []
    for key in sorted(set(stored) | set(now)):
        was, is_ = stored.get(key), now.get(key)
        name = IDENTITY_NAMES.get(key, key)
        if isinstance(was, Mapping) and isinstance(is_, Mapping):
            changes += [f"{name}.{line}" for line in identity_changes(was, is_)]
        elif was != is_:
            changes.append(f"{name}: {was!r} in the checkpoint, {is_!r} now")
    return changes


def data_digest(split: Split) -> str:
    """A short digest of the events a run trains and validates on: a resumed run must see the
    same ones (another data set of the same size, or other split settings, would not).

    Examples
    --------
    >>> from behaviorlm.schema import EvalSet, Sequences
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3)
    >>> valid = EvalSet(s, np.array([0, 1]), np.array([3]), np.array([2]))
    >>> other = Sequences.from_lists([[1, 3, 2]], n_items=3)
    >>> a, b = (Split(t, valid, valid, "leave_one_out") for t in (s, other))
    >>> len(data_digest(a)), data_digest(a) == data_digest(b)
    (16, False)
    """
    digest = hashlib.blake2b(digest_size=8)
    train, valid = split.train, split.valid
    for part in (train.offsets, train.items, train.actions, train.timestamps, train.sources):
        digest.update(np.ascontiguousarray(part).tobytes())
    for part in (
        valid.target_offsets,
        valid.targets,
        valid.histories.offsets,
        valid.histories.items,
    ):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def context_digest(split: Split) -> str:
    """A short digest of what the events of :func:`data_digest` carry beside their items,
    actions, times and sources: values (ratings), devices, locations and the extra columns
    (query words), of the training rows and the validation histories. Another data set whose
    events differ only there trains another model, so a resumed run must see the same.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from behaviorlm.schema import EvalSet, Sequences
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3)
    >>> valid = EvalSet(s, np.array([0, 1]), np.array([3]), np.array([2]))
    >>> rated = replace(s, values=np.array([5.0, 1.0, 3.0], dtype=np.float32))
    >>> a, b = (Split(t, valid, valid, "leave_one_out") for t in (s, rated))
    >>> data_digest(a) == data_digest(b), context_digest(a) == context_digest(b)
    (True, False)
    """
    digest = hashlib.blake2b(digest_size=8)
    for part in (split.train, split.valid.histories):
        for array in (part.values, part.devices, part.locations):
            digest.update(np.ascontiguousarray(array).tobytes())
        for name in sorted(part.extra):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(part.extra[name]).tobytes())
    return digest.hexdigest()


def fit_model(
    model: Recommender,
    split: Split,
    train_config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    progress: bool = True,
    target_actions: Sequence[int] = (),
    resume: bool = False,
    run_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``model`` on ``split.train``; neural models get the shared training loop.

    Parameters
    ----------
    model : Recommender
        An unfitted model; a :class:`NeuralRecommender` is set up and trained in place.
    split : Split
        Training timelines and the validation rows used for early stopping.
    train_config : TrainConfig
        The ``[train]`` table (baselines ignore it).
    run_dir : path, optional
        Folder for ``config.json``, ``metrics.jsonl`` (one line per epoch), ``summary.json``
        and the checkpoint (``checkpoint.safetensors`` + ``checkpoint.json``). A fresh run
        moves an earlier run that left a model into ``previous/``; the caller that saves the
        new artifact removes it (:func:`behaviorlm.train.folder.release`, as ``train`` does).
    progress : bool
        Show a progress bar (only on a terminal) and one line per epoch on standard error.
    target_actions : sequence of int
        Action codes whose events are next-item targets (empty = every event with an item);
        a baseline learns the items of those events too (``Recommender.fit``).
    resume : bool
        Continue from the checkpoint in ``run_dir`` if there is one (its configs must match).
    run_config : mapping, optional
        The resolved run config to write as ``config.json`` (default: model and train parts).

    Under ``torchrun`` (a process group started by :func:`behaviorlm.train.distributed.start`)
    every rank calls this with the same arguments; only rank 0 reads and writes ``run_dir``
    and shows progress, and each rank uses its share of the machine's cores (``threads=0``).

    Returns
    -------
    dict
        ``epochs`` (last epoch trained), ``best_epoch``, ``best_valid`` (NDCG@10, HR@10),
        ``seconds``, ``events_per_s``, ``stopped`` (``completed``, ``early_stopping``,
        ``time_budget``, or ``diverged``: a NaN or infinite loss ended the run, whose model
        is then its best validated one), ``device`` (where it trained, e.g.
        ``"cuda:0"``), ``resumed`` (a sequence model's run went on from a checkpoint) and
        sizes of the run.

    Examples
    --------
    >>> from behaviorlm.data.synthetic import simulate
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.protocol import SplitConfig, make_split
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> split = make_split(preprocess(simulate(n_users=50, seed=0)), SplitConfig())
    >>> fit_model(Pop(PopConfig()), split, TrainConfig(), progress=False)["epochs"]
    0
    """
    world = current_world()
    # an unusable device fails here, before anything is written (baselines fit on the CPU)
    neural = isinstance(model, NeuralRecommender)
    device = train_device(train_config.device, world) if neural else torch.device("cpu")
    if not world.is_main:  # rank 0 alone writes the run directory (and resumes: see _share)
        run_dir, resume, progress = None, False, False
    path = Path(run_dir) if run_dir is not None else None
    if resume and path is None:
        raise ValueError("resume needs the run directory that holds the checkpoint")
    own_loss = getattr(model.config, "loss", "ce")  # mlp's squared error replaces train.loss
    if neural and own_loss != "ce" and train_config.loss != "ce":
        raise ConfigError(
            f"model.loss = {own_loss!r} is the model's own item loss and replaces "
            f"train.loss; train.loss = {train_config.loss!r} would be ignored: leave it 'ce'"
        )

    def begin(resumed: bool) -> None:
        """The run folder, once the run has passed its checks (a resumed run: its checkpoint
        too), so a refused run leaves the folder as it was: this run's config, and for a
        fresh run no file of an earlier one (an earlier model waits in ``previous/`` until
        this run saves its artifact; :mod:`behaviorlm.train.folder`)."""
        if path is None:
            return
        path.mkdir(parents=True, exist_ok=True)
        if not resumed:
            # a baseline's run too, or fit_model called directly, which leaves ended runs
            check_unfinished(path, ended_ok=True)
            set_aside(path)
        config = run_config or {
            "model": model.name,
            "model_config": to_dict(model.config),
            "train": to_dict(train_config),
        }
        _write_json(path / CONFIG_FILE, config)

    if not isinstance(model, NeuralRecommender):
        begin(False)  # a baseline fits anew: nothing to resume
        start = time.perf_counter()
        model.fit(split.train, target_actions)
        seconds = time.perf_counter() - start
        summary: dict[str, Any] = {
            "epochs": 0,
            "best_epoch": None,
            "best_valid": None,
            "seconds": round(seconds, 3),
            "events_per_s": round(len(split.train.items) / max(seconds, 1e-9), 1),
            "stopped": "completed",
            "device": str(device),
        }
    else:
        threads, cores = train_config.threads, available_cores()
        if threads > cores:  # more never helps; far more fails in libgomp
            if progress:
                status_console.print(
                    f"train.threads = {threads} is more than the {cores} cores this process "
                    f"may use: training on {cores}",
                    highlight=False,
                )
            threads = cores
        with torch_threads(threads or world.threads(cores)):
            split_config = (run_config or {}).get("split")
            loop = _Loop(
                model,
                split,
                train_config,
                path,
                progress,
                target_actions,
                world,
                device,
                split_config=split_config,
            )
            summary = loop.run(resume, begin)
    if path is not None:
        _write_json(path / SUMMARY_FILE, summary)
    return summary


class _Loop:
    """State of one training run of a neural model (see :func:`fit_model`)."""

    def __init__(
        self,
        model: NeuralRecommender,
        split: Split,
        config: TrainConfig,
        path: Path | None,
        progress: bool,
        codes: Sequence[int],
        world: World,
        device: torch.device,
        split_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.model, self.config, self.path, self.progress = model, config, path, progress
        self.split_config = dict(split_config or {})
        self.digest = data_digest(split) if path is not None else ""
        self.context = context_digest(split) if path is not None else ""
        self.world, self.device = world, device
        self.codes = tuple(int(c) for c in codes)
        self.module: SequenceModule = model.setup(split.train, config.seed).to(self.device)
        assert model.sizes is not None
        self.data = TrainingSet.build(
            split.train, int(model.config.max_len), model.sizes, windows=config.sliding_windows
        )
        # context codes that no window feeds keep no random row (on every rank alike: each
        # builds the whole set)
        model.zero_unfed(self.data.inputs)
        self.valid = self._validation_rows(split.valid)
        self.batch_size = config.rows_per_batch(len(self.data))
        self.steps_per_epoch = -(-len(self.data) // self.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.module, config.weight_decay), lr=config.lr, betas=(0.9, 0.98)
        )
        self.row_events = (self.data.target_actions > 0).sum(1).numpy()
        # item targets per row: the ranks' loss weights (World.shard), and the weight of a
        # batch's item loss in the epoch's mean (fewer than its events with target actions)
        self.row_items = (
            item_loss_mask(self.data.target_items, self.data.target_actions, self.codes)
            .sum(1)
            .numpy()
        )
        self.parallel = world.wrap(self.module)
        self.average = (
            WeightAverage(self.module, config.weight_average) if config.weight_average else None
        )
        self.sampler = NegativeSampler.of(
            split.train.items, model.n_items, config.negatives, self.device
        )
        self.step = 0
        self.epoch = 0
        self.best: dict[str, torch.Tensor] | None = None
        self.best_valid: dict[str, float] | None = None
        self.best_epoch: int | None = None
        self.bad_evals = 0
        # the state that the last validation found (a cut epoch's partial one is undone):
        # bad_evals, and the best weights, result and epoch
        self.bad_before = 0
        self.best_before: tuple[dict[str, torch.Tensor] | None, dict[str, float] | None, int | None]
        self.best_before = (None, None, None)
        # a cut epoch: its batches done, and its loss sums, events and seconds so far (a
        # resumed run with a larger budget finishes it from the next batch)
        self.batch = 0
        self.partial: dict[str, Any] = {"sums": [0.0, 0.0, 0.0], "events": 0, "seconds": 0.0}
        self.spent = 0.0  # share of the time budget used (schedule "budget")
        self.train_seconds = 0.0
        self.events = 0
        # the run's clock: seconds it ran in earlier processes (a resumed run), and when it
        # started in this one; the time budget counts both
        self.elapsed = 0.0
        self.clock = time.perf_counter()

    def _validation_rows(self, valid: EvalSet) -> EvalSet | None:
        rows = np.flatnonzero(np.diff(valid.target_offsets) > 0)
        if len(rows) == 0:
            return None
        n = self.config.valid_users
        if n and n < len(rows):
            rows = np.random.default_rng(self.config.seed).choice(rows, size=n, replace=False)
        # by history length: scoring batches of similar length carry little padding
        lengths = np.minimum(valid.histories.lengths[rows], int(self.model.config.max_len))
        chosen = valid.select(rows[np.argsort(lengths, kind="stable")])
        if self.config.valid_exclude_seen and targets_in_history(chosen) == 1.0:
            # masked, every target is unreachable: validation would read 0 at every epoch and
            # early stopping would keep the first (a purchase of an item viewed before, say)
            raise ConfigError(
                "every validation target is an item already in the user's history, so with "
                "seen items masked validation NDCG@10 is 0 at every epoch; set "
                "train.valid_exclude_seen=false (and evaluate with --include-seen)"
            )
        return chosen

    # ---- checkpoints ------------------------------------------------------------------

    @staticmethod
    def _train_identity(config: TrainConfig) -> dict[str, Any]:
        """The train settings that must not change when a run resumes."""
        return {k: v for k, v in to_dict(config).items() if k not in RESUMABLE_CHANGES}

    def _identity(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "model_config": to_dict(self.model.config),
            "train": self._train_identity(self.config),
            "training_rows": len(self.data),
            "n_items": self.model.n_items,
            "target_actions": list(self.codes),
            "split": self.split_config,
            "training_data": self.digest,
            "training_context": self.context,
        }

    def _run_seconds(self) -> float:
        """The run's clock: seconds in earlier processes (a resumed run) and in this one."""
        return self.elapsed + time.perf_counter() - self.clock

    def _capture(self, stopped: str | None) -> Checkpoint:
        meta = {
            "epoch": self.epoch,
            "step": self.step,
            "best_epoch": self.best_epoch,
            "best_valid": self.best_valid,
            "bad_evals": self.bad_evals,
            "train_seconds": self.train_seconds,
            "events": self.events,
            "elapsed_s": self._run_seconds(),
            "stopped": stopped,
            "time_budget_s": self.config.time_budget_s,  # the budget that cut it, if one did
            "batch": self.batch,
            "partial": self.partial,
            "bad_evals_before": self.bad_before,
            "identity": self._identity(),
        }
        # the best state before a cut epoch's partial validation, where it replaced it
        replaced = bool(self.batch) and self.best_before[0] is not self.best
        if replaced:
            meta["best_before"] = {"valid": self.best_before[1], "epoch": self.best_before[2]}
        average = None if self.average is None else self.average.state()
        before = self.best_before[0] if replaced else None
        return Checkpoint.capture(self.module, self.optimizer, self.best, meta, average, before)

    def _save(self, stopped: str | None) -> None:
        if self.path is not None:
            self._capture(stopped).save(self.path)

    def _restore(self, ckpt: Checkpoint) -> str | None:
        """Continue from ``ckpt``; returns how the run had stopped."""
        ckpt.restore(self.module, self.optimizer)
        meta = ckpt.meta
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.best = ckpt.best
        self.best_valid, self.best_epoch = meta["best_valid"], meta["best_epoch"]
        self.bad_evals = int(meta["bad_evals"])
        self.bad_before = int(meta.get("bad_evals_before", self.bad_evals))
        before = meta.get("best_before")  # replaced by the cut epoch's partial validation
        self.best_before = (
            (ckpt.best_before, before["valid"], before["epoch"])
            if before is not None
            else (self.best, self.best_valid, self.best_epoch)
        )
        # a checkpoint from before cut epochs were finished: its cut epoch counts as whole
        self.batch = int(meta.get("batch", 0))
        self.partial = dict(meta.get("partial", self.partial))
        self.train_seconds, self.events = float(meta["train_seconds"]), int(meta["events"])
        # a checkpoint from before the clock was saved: its run's training time, a lower bound
        self.elapsed = float(meta.get("elapsed_s", self.train_seconds))
        self.clock = time.perf_counter()
        if self.average is not None:  # updated once a step
            self.average.load(ckpt.average or {}, self.step)
        stopped: str | None = meta["stopped"]
        return stopped

    def _budget_raised(self, meta: dict[str, Any]) -> bool:
        """Whether this run's time budget is larger than the one its checkpoint's epoch was
        cut with (0: none, the largest)."""
        budget, cut = self.config.time_budget_s, float(meta.get("time_budget_s", 0.0))
        return cut > 0 and (budget <= 0 or budget > cut)

    def _share(self, stopped: str | None) -> str | None:
        """Give every rank the state of rank 0, the only one that reads the run directory."""
        if self.world.size == 1:
            return stopped
        return self._restore(self.world.from_main(partial(self._capture, stopped)))

    def _resume(self) -> str | None:
        """Load the checkpoint of the run directory; returns how the run had stopped."""
        assert self.path is not None
        ckpt = Checkpoint.load(self.path)
        stored = dict(ckpt.meta["identity"])
        # a train setting added since the checkpoint was written ran at its default there,
        # and a checkpoint written before the split and the data's digest joined the identity
        # cannot tell them
        stored["train"] = {**self._train_identity(TrainConfig()), **stored["train"]}
        # and so did a model setting added since (mlp's ratings, say)
        defaults = to_dict(type(self.model.config)())
        stored["model_config"] = {**defaults, **stored["model_config"]}
        now = self._identity()
        for key in ("split", "training_data", "training_context"):
            stored.setdefault(key, now[key])
        if all(stored[k] == now[k] for k in ("training_data", "training_context")):
            stored["split"] = now["split"]  # split settings that leave the events as they were
        if stored != now:
            changed = "; ".join(identity_changes(stored, now)[:3])
            raise ConfigError(
                f"the checkpoint in {self.path} was written by another config or data set "
                f"({changed}; only {', '.join(sorted(RESUMABLE_CHANGES))} may change when "
                "resuming); use another run directory or drop --resume"
            )
        try:
            stopped = self._restore(ckpt)
        except RuntimeError as exc:  # tables sized by another data set's codes
            if "size mismatch" not in str(exc):
                raise
            first = str(exc).strip().splitlines()[-1].strip()
            raise ConfigError(
                f"the checkpoint in {self.path} holds weights of other shapes than this data "
                f"set's model ({first}); use another run directory or drop --resume"
            ) from exc
        patience = self.config.patience
        if stopped == "early_stopping" and not (patience and self.bad_evals >= patience):
            stopped = None  # a larger patience (or none) lets the run go on from its last epoch
        budget = self.config.time_budget_s
        time_left = budget <= 0 or self.elapsed < budget  # a raised budget may be spent too
        if stopped == "time_budget" and self._budget_raised(ckpt.meta) and time_left:
            if self.batch and patience and self.bad_before >= patience:
                stopped = "early_stopping"  # used up before the cut epoch (a lowered patience)
            elif self.batch:
                # a larger budget (or none) finishes the cut epoch from its next batch, as if
                # never cut: the validation of its part is undone (the patience, the best
                # state; its metrics line is replaced once the epoch is validated whole)
                self.epoch -= 1
                self.bad_evals = self.bad_before
                self.best, self.best_valid, self.best_epoch = self.best_before
                stopped = None
            # an epoch that ended past the deadline was whole: the run goes on with the
            # next, unless it was the last or its validation had used up the patience
            elif self.epoch >= self.config.epochs:
                stopped = "completed"  # every epoch trained: no early stop (as in run)
            elif patience and self.bad_evals >= patience:
                stopped = "early_stopping"
            else:
                stopped = None
        if stopped is None and self.epoch >= self.config.epochs:
            stopped = "completed"  # its last epoch done (an early stop there, say)
        if stopped is None and patience and self.bad_evals >= patience:
            stopped = "early_stopping"  # an interrupted run whose patience is now used up
        # drop lines of epochs after the checkpoint (a crash between); a cut epoch's line
        # stays until the epoch, finished, writes its own (_record)
        self._keep_lines(int(ckpt.meta["epoch"]))
        return stopped

    def _keep_lines(self, last: int) -> None:
        """Keep the metrics lines of epochs up to ``last`` (and drop half-written ones)."""
        metrics = None if self.path is None else self.path / METRICS_FILE
        if metrics is None or not metrics.is_file():
            return
        lines = metrics.read_text().splitlines()
        kept = [line for line in lines if (epoch := _epoch_of(line)) is not None and epoch <= last]
        if kept != lines:
            metrics.write_text("".join(line + "\n" for line in kept))

    # ---- one step, one epoch ----------------------------------------------------------

    def _loss(
        self,
        rows: np.ndarray,
        generator: torch.Generator,
        item_weight: float = 1.0,
        action_weight: float = 1.0,
    ) -> tuple[torch.Tensor, float, float]:
        """Loss of the rows ``rows``; the weights scale this rank's share (World.shard)."""
        with record_function(REGIONS["batch"]):
            inputs, next_items, next_actions = self.data.batch(rows)
            if self.device.type != "cpu":
                inputs = inputs.to(self.device)
                next_items = next_items.to(self.device)
                next_actions = next_actions.to(self.device)
        cfg = self.config
        with (
            record_function(REGIONS["forward"]),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16),
        ):
            hidden = self.module.encode(inputs)  # (B, T, D)
            mask = item_loss_mask(next_items, next_actions, self.codes)
            if not bool(mask.any()):
                item = hidden.sum() * 0.0
            else:
                selected, targets = hidden[mask], next_items[mask]
                # a model may bring its own next-item loss (SequenceModule.item_loss)
                own = self.module.item_loss(selected, targets)
                if own is not None:
                    item = own
                elif cfg.loss == "ce":
                    item = full_softmax_loss(self.module, selected, targets)
                else:
                    negatives = self.sampler.sample(cfg.num_negatives, generator)
                    item = sampled_softmax_loss(
                        self.module, selected, targets, negatives, self.sampler.log_q
                    )
            item = item * item_weight
            total = item
            act = 0.0
            if cfg.action_loss_weight > 0:
                has_next = next_actions > 0
                a = action_loss(self.module, hidden[has_next], next_actions[has_next])
                a = a * action_weight
                total = item + cfg.action_loss_weight * a
                act = float(a.detach())
        return total, float(item.detach()), act

    def _train_epoch(
        self, deadline: float | None, advance: Any
    ) -> tuple[dict[str, float], bool, bool]:
        """Train the epoch's batches (of a cut epoch, those after :attr:`batch`); its stats,
        whether the deadline cut it, and whether the loss diverged (NaN or infinite: the
        epoch stops before a step on it)."""
        cfg = self.config
        seed = _epoch_seed(cfg.seed, self.epoch)
        generator = torch.Generator()
        batches = self.data.epoch_batches(
            self.batch_size, np.random.default_rng(seed), cfg.length_buckets
        )
        first = self.batch  # a cut epoch goes on from its next batch
        carried: dict[str, Any] = (
            self.partial
            if first
            else {"sums": [0.0] * 3, "events": 0, "item_targets": 0, "seconds": 0.0}
        )
        self.module.train()
        # the sums of a cut epoch's part, shared among the ranks (summed over them below)
        sums = np.asarray(carried["sums"], dtype=np.float64) / self.world.size
        events = targets = 0
        start = time.perf_counter()
        out_of_time = diverged = False
        spent = 0.0
        done = first
        for index in range(first, len(batches)):
            batch = batches[index]
            # seeded by batch, so a cut epoch finishes with the draws it would have had;
            # ranks draw their own dropout masks
            step_seed = _epoch_seed(seed, index)
            torch.manual_seed(step_seed + self.world.rank)
            generator.manual_seed(step_seed)
            rows, item_weight, action_weight = self.world.shard(
                batch, self.row_items, self.row_events
            )
            if deadline is not None and cfg.schedule == "budget":
                left = (deadline - time.perf_counter()) / cfg.time_budget_s
                spent = float(self.world.sum(np.array([1.0 - left]))[0]) / self.world.size
            self.spent = spent
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.step, self.total_steps, cfg, spent)
            loss, item, act = self.parallel(
                partial(self._loss, rows, generator, item_weight, action_weight)
            )
            value = float(loss.detach())
            if self.world.any(not math.isfinite(value)):  # diverged: no step on it
                diverged = True
                break
            self.optimizer.zero_grad(set_to_none=True)
            with record_function(REGIONS["backward"]):
                loss.backward()  # type: ignore[no-untyped-call]
            with record_function(REGIONS["optimizer"]):
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
                self.optimizer.step()
                if self.average is not None:
                    self.average.update()
            self.step += 1
            n = int(self.row_events[batch].sum())
            m = int(self.row_items[batch].sum())  # n with every action a target
            events += n
            targets += m
            # summed over the ranks (below) the weighted shares give the batch's mean losses;
            # each weighs by its own targets (a batch without item targets adds no item loss)
            # (the first sum, the steps' losses by events, is kept in the checkpoints' shape)
            sums += np.array([value * n, item * m, act * n]) / self.world.size
            advance(1, value, events / max(time.perf_counter() - start, 1e-9))
            done = index + 1
            if deadline is not None and self.world.any(time.perf_counter() > deadline):
                out_of_time = done < len(batches)  # past its last batch the epoch is whole
                break
        sums = self.world.sum(sums)
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        self.events += events
        epoch_events = int(carried["events"]) + events
        # a cut epoch's part saved before item targets were counted weighed them by events
        epoch_targets = int(carried.get("item_targets", carried["events"])) + targets
        epoch_seconds = float(carried["seconds"]) + seconds
        # a cut epoch keeps its place and its sums so far (a whole one: 0)
        self.batch = done if out_of_time and done < len(batches) else 0
        self.partial = {
            "sums": [float(x) for x in sums],
            "events": epoch_events,
            "item_targets": epoch_targets,
            "seconds": epoch_seconds,
        }
        item_mean = float(sums[1]) / max(epoch_targets, 1)
        action_mean = float(sums[2]) / max(epoch_events, 1)
        stats = {
            # the loss the steps minimise, of the epoch's means: item + weight x action
            "loss": item_mean + cfg.action_loss_weight * action_mean,
            "item_loss": item_mean,
            "action_loss": action_mean,
            "lr": lr_at(max(self.step - 1, 0), self.total_steps, cfg, spent),
            "seconds": round(epoch_seconds, 3),
            "events_per_s": round(epoch_events / max(epoch_seconds, 1e-9), 1),
        }
        return stats, out_of_time, diverged

    def _validate(self) -> dict[str, float] | None:
        if self.valid is None:
            return None
        with self.average.applied() if self.average is not None else nullcontext():
            valid, exclude_seen = self.valid, self.config.valid_exclude_seen
            with record_function(REGIONS["validate"]):
                result = self.world.from_main(lambda: validate(self.model, valid, exclude_seen))
            self.module.train()
            if self.best_valid is None or result["NDCG@10"] > self.best_valid["NDCG@10"]:
                self.best_valid, self.best_epoch = result, self.epoch
                self.best = self._weights()
                self.bad_evals = 0
            elif self._progress() >= self.config.patience_from:  # patience counts from there
                self.bad_evals += 1
        return result

    # ---- the run ----------------------------------------------------------------------

    def run(self, resume: bool, begin: Callable[[bool], None]) -> dict[str, Any]:
        """Train (or go on training); ``begin(resumed)`` prepares the run folder once the
        checkpoint to resume from, if any, has been checked."""
        cfg = self.config
        stopped: str | None = None
        resumed = resume and self.path is not None and Checkpoint.exists(self.path)
        failed: Exception | None = None
        try:
            if resumed:
                stopped = self._resume()  # refuses another config before the folder changes
            begin(resumed)
            if self.path is not None and not resumed:
                if resume and self.progress:  # said, not refused: the run starts from epoch 1
                    status_console.print(
                        f"no checkpoint in {self.path} to resume: a new run starts",
                        highlight=False,
                    )
                (self.path / METRICS_FILE).write_text("")
        except Exception as err:  # raised below, once every rank knows
            failed = err
        # rank 0 alone reads the checkpoint and writes the folder: the other ranks learn that
        # it could not, and stop with it, instead of waiting for its state
        reason = self.world.from_main(lambda: None if failed is None else str(failed))
        if failed is not None:
            raise failed
        if reason is not None:
            raise ConfigError(f"rank 0 could not start the run: {reason}")
        stopped = self._share(stopped)
        # a resumed run has spent part of its budget already: the deadline and the schedule
        # that follows it go on from there
        left = cfg.time_budget_s - self._run_seconds()
        start = time.perf_counter()
        deadline = start + left if cfg.time_budget_s > 0 else None
        spent = self.epoch and not self.batch and deadline is not None and stopped is None
        if spent and self.world.any(left <= 0):
            stopped = "time_budget"  # resumed with its budget spent: no epoch starts
            self._save(stopped)
        if resumed and stopped is not None and self.progress:
            # a run whose epochs are done: no setting that may change goes on from there
            last = self.epoch >= cfg.epochs and not self.batch
            status_console.print(
                f"the run in {self.path} had stopped after epoch {self.epoch} ({stopped}): "
                "nothing more to train; "
                + (
                    _OVER
                    if last
                    else _GO_ON.get(stopped, _OVER).format(
                        used=self.elapsed,
                        budget=cfg.time_budget_s,
                        # a schedule that follows the budget needs one
                        unbounded=" (0: no budget)" if cfg.schedule == "epochs" else "",
                    )
                ),
                highlight=False,
            )
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps, loss {task.fields[loss]:.4f}, {task.fields[rate]:,.0f} events/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        show = self.progress and status_console.is_terminal
        with Progress(*columns, console=status_console, transient=True, disable=not show) as bar:
            task = bar.add_task(
                self.model.name, total=self.total_steps, completed=self.step, loss=0.0, rate=0.0
            )

            first_step, first_epoch = self.step, self.epoch

            def advance(n: int, loss: float, rate: float) -> None:
                bar.update(task, advance=n, loss=loss, rate=rate)

            def expected_total() -> int:
                """The run's last step: of its epochs, or, where the budget ends it first, the
                step the session's pace reaches by the deadline (set once an epoch, since a
                new total resets the bar's speed and so its remaining time)."""
                now = time.perf_counter()
                if deadline is None or self.step == first_step:
                    return self.total_steps
                pace = (self.step - first_step) / max(now - start, 1e-9)
                reached = self.step + int(pace * max(deadline - now, 0.0))
                return max(min(self.total_steps, reached), self.step)

            while stopped is None and self.epoch < cfg.epochs:
                if self.epoch > first_epoch and self.world.any(
                    deadline is not None and time.perf_counter() > deadline
                ):
                    # the budget ran out in the last epoch's validation: no epoch of a
                    # single batch and a whole validation more
                    stopped = "time_budget"
                    self._save(stopped)
                    break
                self.epoch += 1
                bar.update(
                    task,
                    description=f"{self.model.name} epoch {self.epoch}/{cfg.epochs}",
                    total=expected_total(),
                )
                stats, out_of_time, diverged = self._train_epoch(deadline, advance)
                if diverged:  # the best weights so far are the model; no epoch follows
                    stopped = "diverged"
                    if self.partial["events"]:  # a line for the batches it trained, if any
                        self._record(stats, None)
                    self._save(stopped)
                    break
                # an epoch that ends past the deadline is the last: it is validated (even
                # off the eval_every beat) and no epoch follows
                out_of_time = out_of_time or (
                    self.epoch < cfg.epochs
                    and self.world.any(deadline is not None and time.perf_counter() > deadline)
                )
                due = self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs
                self.bad_before = self.bad_evals
                self.best_before = (self.best, self.best_valid, self.best_epoch)
                valid = self._validate() if (due or out_of_time) else None
                if out_of_time:
                    stopped = "time_budget"
                elif self.epoch == cfg.epochs:  # every epoch trained: no early stop, whatever
                    stopped = "completed"  # the patience says (as a resumed run reads it)
                elif cfg.patience and self.bad_evals >= cfg.patience:
                    stopped = "early_stopping"
                self._record(stats, valid)
                # a cut epoch is saved as it ended: resuming it with the same budget trains
                # nothing more, and a larger budget finishes it from its next batch
                self._save(stopped)
        if stopped == "diverged" and self.best is None:
            raise ValueError(
                f"training diverged (a NaN or infinite loss) in epoch {self.epoch}, before any "
                "validation kept a model: train again with a lower train.lr (or "
                "train.grad_clip above 0)"
            )
        if self.best is None and self.average is not None:  # never validated: the average
            with self.average.applied():
                self.best = self._weights()
        if self.best is not None:
            self.module.load_state_dict(self.best)
        self.module.eval().cpu()  # handed back where artifacts are loaded and served
        return {
            "epochs": self.epoch,
            "best_epoch": self.best_epoch,
            "best_valid": self.best_valid,
            "seconds": round(time.perf_counter() - start, 3),  # this session
            "run_seconds": round(self._run_seconds(), 3),  # resumed sessions too
            "resumed": resumed,  # from a checkpoint of an earlier session
            "train_seconds": round(self.train_seconds, 3),
            "events_per_s": round(self.events / max(self.train_seconds, 1e-9), 1),
            "stopped": stopped or "completed",
            "steps": self.step,
            "training_rows": len(self.data),
            "batch_size": self.batch_size,
            "events_per_epoch": self.data.n_targets,
            "device": str(self.device),
        }

    def _weights(self) -> dict[str, torch.Tensor]:
        """A copy of the module's state."""
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def _progress(self) -> float:
        """Share of the run done: of all steps, or of the time budget when the schedule
        follows the clock (whichever is further on), as the learning-rate schedule sees it."""
        return max(self.step / max(1, self.total_steps), self.spent)

    def _record(self, stats: dict[str, float], valid: dict[str, float] | None) -> None:
        line = {"epoch": self.epoch, "step": self.step, **stats, "valid": valid}
        line["best_epoch"] = self.best_epoch
        if self.path is not None:
            self._keep_lines(self.epoch - 1)  # a finished cut epoch replaces its part's line
            with (self.path / METRICS_FILE).open("a") as f:
                f.write(json.dumps(line) + "\n")
        if self.progress:
            shown = (
                f", valid NDCG@10 {valid['NDCG@10']:.4f} HR@10 {valid['HR@10']:.4f}"
                if valid
                else ""
            )
            status_console.print(
                f"epoch {self.epoch}: loss {stats['loss']:.4f}{shown}, "
                f"{stats['seconds']:.1f}s, {stats['events_per_s']:,.0f} events/s",
                highlight=False,
            )
