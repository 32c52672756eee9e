"""Artifacts: a trained model plus everything needed to use it, in one folder.

Layout::

    artifact.json   model name, run config (split, model), data set summary, versions
    model/          model.json (config) + weights.safetensors, written by Recommender.save
    dataset/        the Dataset the model was trained on (ids, titles, timelines), without
                    ground-truth columns

A training run's folder holds these beside its logs (:mod:`behaviorlm.train.folder`).

Nothing in an artifact executes code on load: JSON, Parquet and safetensors only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from behaviorlm.config import from_dict
from behaviorlm.data.dataset import Dataset
from behaviorlm.data.errors import DataError
from behaviorlm.data.feed import followee_feed, merge_feed
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.files import write_whole
from behaviorlm.models import MODELS, Recommender
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import TRUTH_PREFIX, Sequences, Split

FORMAT_VERSION = 1
META_FILE = "artifact.json"
MODEL_DIR = "model"
DATASET_DIR = "dataset"
#: What :meth:`Artifact.save` writes into a folder (``artifact.json`` last).
PARTS = (META_FILE, MODEL_DIR, DATASET_DIR)
#: Where a fresh training run keeps the earlier run of its folder until it saves its own
#: artifact (:mod:`behaviorlm.train.folder`).
PREVIOUS_DIR = "previous"


def package_version() -> str:
    """The installed behaviorlm version (``"unknown"`` when running from a source tree)."""
    try:
        return version("behaviorlm")
    except PackageNotFoundError:
        return "unknown"


def kept_model(directory: str | Path) -> Path | None:
    """``previous/`` of a run folder whose fresh run has not finished, where the folder's
    earlier model waits (:mod:`behaviorlm.train.folder`); None otherwise."""
    path = Path(directory)
    kept = path / PREVIOUS_DIR
    return kept if (kept / META_FILE).is_file() and not (path / META_FILE).is_file() else None


def require_artifact(directory: str | Path) -> Path:
    """The folder, where it holds an artifact; a DataError that says what it holds instead.

    Examples
    --------
    >>> import tempfile
    >>> require_artifact(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: ... is not a behaviorlm artifact (no artifact.json)...
    """
    path = Path(directory)
    if (path / META_FILE).is_file():
        return path
    kept = kept_model(path)
    if kept is not None:
        raise DataError(
            f"{path} holds a training run that has not finished (no {META_FILE})",
            how=f"its earlier model is in {kept}; `behaviorlm train DATASET --resume --out "
            f"{path}` goes on with the run from its last finished epoch (or starts it "
            "again, where it finished none)",
        )
    if (path / "config.json").is_file():  # behaviorlm.train.folder.CONFIG_FILE: a run's
        raise DataError(
            f"{path} holds a training run that has not finished (no {META_FILE})",
            how=f"`behaviorlm train DATASET --resume --out {path}` goes on with it from its "
            "last finished epoch (or starts it again, where it finished none)",
        )
    raise DataError(
        f"{path} is not a behaviorlm artifact (no {META_FILE})",
        how="pass the folder written by `behaviorlm train`",
    )


@dataclass
class Artifact:
    """A fitted model with its data set and the config of the run that made it.

    Examples
    --------
    >>> import tempfile
    >>> from behaviorlm.data.synthetic import simulate
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> ds = preprocess(simulate(n_users=50, seed=1))
    >>> art = Artifact(model=Pop(PopConfig()).fit(ds.sequences()), dataset=ds)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = art.save(tmp)
    ...     Artifact.load(tmp).model.name
    'pop'
    """

    model: Recommender
    dataset: Dataset
    run: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fitted = self.model.n_items
        if fitted and fitted != self.dataset.n_items:  # ids of one, scores of the other
            raise ValueError(
                f"the model ranks {fitted:,} items and the data set has {self.dataset.n_items:,}: "
                "an artifact pairs a model with the data set it was trained on"
            )
        if isinstance(self.model, NeuralRecommender):  # before setup too: setup applies it
            self.model.use_sources(self.dataset.vocab.get("source", []))

    def save(self, directory: str | Path) -> Path:
        """Write the artifact folder; returns its path."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        # first: a save that fails part-way leaves no artifact.json over a mix of two models
        (path / META_FILE).unlink(missing_ok=True)
        self.model.save(path / MODEL_DIR)
        ds = self.dataset
        truth = [c for c in ds.events.columns if c.startswith(TRUTH_PREFIX)]
        Dataset(
            events=ds.events.drop(truth),
            items=ds.items,
            users=ds.users.drop([c for c in ds.users.columns if c.startswith(TRUTH_PREFIX)]),
            follows=ds.follows,
            vocab=ds.vocab,
            meta=ds.meta,
        ).save(path / DATASET_DIR, checked=False)  # its own part, even a half-written one
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.model.name,
            "behaviorlm_version": package_version(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "dataset": {
                "name": ds.meta.get("name", ""),
                "n_users": ds.n_users,
                "n_items": ds.n_items,
                "n_events": ds.n_events,
            },
            "run": self.run,
        }
        # last and whole: a folder with an artifact.json holds a model that loads
        write_whole(path / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Artifact:
        """Read an artifact folder written by :meth:`save`."""
        path = require_artifact(directory)
        meta_path = path / META_FILE
        try:
            meta = json.loads(meta_path.read_text())
            name = meta["model"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{meta_path} is damaged ({exc})", how="train the model again") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{path} has artifact format {meta.get('format_version')}, "
                f"this version reads {FORMAT_VERSION}",
                how="train the model again with this version",
            )
        if name not in MODELS:
            raise DataError(
                f"{path} holds an unknown model {name!r}",
                how=f"use a behaviorlm version that has it; known: {', '.join(MODELS)}",
            )
        try:
            model = MODELS[name][1].load(path / MODEL_DIR)
        except Exception as exc:  # any failure to read the weights: say which file, no traceback
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise DataError(  # torch's header line and its first detail (a key, a shape)
                f"cannot read the model in {path / MODEL_DIR}: {' '.join(lines[:2])}",
                how="train the model again",
            ) from exc
        try:
            dataset = Dataset.load(path / DATASET_DIR)
        except DataError as exc:  # a damaged artifact: the data set is its own part
            raise DataError(
                f"cannot read the data set in {path / DATASET_DIR}: {exc.what}",
                how="train the model again",
            ) from exc
        saved = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
        held = {
            "n_users": dataset.n_users,
            "n_items": dataset.n_items,
            "n_events": dataset.n_events,
        }
        other = [k for k, v in held.items() if k in saved and saved[k] != v]
        if other:  # the model's data set replaced by another of the same catalogue, say
            raise DataError(
                f"the data set in {path / DATASET_DIR} is not the one this model was saved with "
                + ", ".join(f"({k} {held[k]:,}, saved with {saved[k]:,})" for k in other),
                how="train the model again, or put its own data set back",
            )
        return cls(model=model, dataset=dataset, run=meta.get("run", {}))

    def user_index(self, user_ids: list[str]) -> np.ndarray:
        """Internal ids (``1..n_users``) of external user ids; raises DataError naming the
        unknown ones.

        Examples
        --------
        >>> import behaviorlm as blm
        >>> ds = blm.preprocess(blm.simulate(30, seed=0))
        >>> art = blm.train(ds, "pop", progress=False)
        >>> art.user_index([ds.users["user_id"][2]]).tolist()
        [3]
        """
        if isinstance(user_ids, str):
            raise TypeError(f"user_ids is a list of ids, got the string {user_ids!r}")
        return self._known("user", user_ids, self.dataset.user_index(user_ids))

    def _known(self, kind: str, ids: list[str], index: np.ndarray) -> np.ndarray:
        """``index``, the internal ids of ``ids``; DataError naming the unknown ids (0)."""
        unknown = [u for u, i in zip(ids, index, strict=True) if i == 0]
        if unknown:
            raise DataError(
                f"unknown {kind} id(s): {', '.join(map(str, unknown[:5]))}"
                + (" ..." if len(unknown) > 5 else ""),
                where=self.dataset.meta.get("name") or None,
                how="use ids that occur in the training data",
            )
        return index

    def histories(self, user_ids: list[str]) -> Sequences:
        """Full timelines of external user ids (as trained on), one row each, in that order.

        Raises DataError naming the unknown ids.
        """
        return self.timelines().select(self.user_index(user_ids) - 1)

    @property
    def target_codes(self) -> list[int]:
        """Action codes of the events the model was trained to predict (``split.target_actions``
        of its training run; empty: every event with an item)."""
        split = self.run.get("config", {}).get("split") or {}
        return [self.dataset.action_code(a) for a in split.get("target_actions") or ()]

    @property
    def followee_actions(self) -> tuple[str, ...]:
        """Actions of followed users that the model reads in a timeline (``split.followee_actions``
        of its training run; empty: none)."""
        split = self.run.get("config", {}).get("split") or {}
        return tuple(split.get("followee_actions") or ())

    def timelines(self) -> Sequences:
        """Every user's full timeline as the model reads it (row ``u - 1`` is user ``u``): the
        user's own events, with the followee events of :attr:`followee_actions` merged in when
        the model was trained with them (:mod:`behaviorlm.data.feed`). Built once."""
        return self._timelines

    @cached_property
    def _timelines(self) -> Sequences:
        seqs = self.dataset.sequences()
        if not self.followee_actions:
            return seqs
        return merge_feed(seqs, followee_feed(self.dataset, self.followee_actions))

    def split(self) -> Split:
        """The split of the model's training run, rebuilt from its stored ``split`` config:
        the training timelines, and the validation and test rows that ``evaluate_artifact``
        scores (with the followee events the model reads, where it was trained with them).

        Raises DataError for an artifact that does not record its split.

        Examples
        --------
        >>> import behaviorlm as blm
        >>> art = blm.train(blm.preprocess(blm.simulate(60, seed=0)), "pop", progress=False)
        >>> split = art.split()
        >>> len(split.test) == blm.evaluate_artifact(art, ks=(10,)).n_users
        True
        """
        stored = self.run.get("config", {}).get("split")
        if stored is None:
            raise DataError(
                "this artifact does not say how its training data was split, so its test "
                "events cannot be told apart from its training events",
                how="train it with behaviorlm.train / `behaviorlm train`, which records the split",
            )
        return make_split(self.dataset, from_dict(SplitConfig, stored, where="split"))

    def category_mask(self, categories: list[str]) -> np.ndarray:
        """(n_items + 1,) True for items in any of ``categories``; an item's ``"a|b"`` lists
        count each, and so does a given ``"a|b"`` (items of a or b).

        Raises DataError when the data set has no categories or one of ``categories`` names
        no item.
        """
        if isinstance(categories, str):
            categories = [categories]
        categories = [part for given in categories for part in given.split("|") if part]
        table = self.dataset.items
        if "category" not in table.columns:
            raise DataError("this data set has no item categories", how="drop --category")
        parts = table["category"].fill_null("").str.split("|")
        known = set(parts.explode().drop_nulls().to_list()) - {""}
        missing = [c for c in categories if c not in known]
        if missing or not categories:  # one mistyped name among good ones would go unnoticed
            raise DataError(
                f"no item has category {', '.join(map(repr, missing)) or repr('')}",
                how="use categories of the data set's items table: "
                + ", ".join(sorted(known)[:10])
                + (f" (and {len(known) - 10:,} more)" if len(known) > 10 else ""),
            )
        hit = parts.list.eval(pl.element().is_in(categories)).list.any().to_numpy()
        return np.concatenate([[False], hit])

    def item_ids(self, item_ids: list[str]) -> np.ndarray:
        """Internal ids of external item ids; raises DataError naming unknown ones."""
        if isinstance(item_ids, str):
            raise TypeError(f"item_ids is a list of ids, got the string {item_ids!r}")
        return self._known("item", item_ids, self.dataset.item_index(item_ids))

    def item_table(self, items: np.ndarray) -> list[dict[str, Any]]:
        """Item metadata rows (external id, title, category where present) for internal ids.

        The padding id 0, which ends a ranked list shorter than its ``k``
        (:class:`behaviorlm.recommend.Ranked`), gets no row, so a list's rows stay in its
        order; an id outside ``1..n_items`` is a ValueError.

        Examples
        --------
        >>> import behaviorlm as blm
        >>> ds = blm.preprocess(blm.simulate(30, seed=0))
        >>> art = blm.train(ds, "pop", progress=False)
        >>> [row["item_id"] for row in art.item_table(np.array([2, 1, 0]))] == [
        ...     ds.items["item_id"][1], ds.items["item_id"][0]]
        True
        """
        ids = np.asarray(items, dtype=np.int64).ravel()
        n_items = self.dataset.n_items
        bad = ids[(ids < 0) | (ids > n_items)]
        if len(bad):
            raise ValueError(f"item {int(bad[0])} is outside 1..{n_items} (0 is padding)")
        rows = ids[ids > 0] - 1
        columns = self._item_columns
        return [{name: values[r] for name, values in columns.items()} for r in rows.tolist()]

    @cached_property
    def _item_columns(self) -> dict[str, list[Any]]:
        """The metadata columns of :meth:`item_table` as Python lists, built on first use.

        A service looks up a few rows per request; indexing lists is far cheaper than
        selecting rows of the polars table each time.
        """
        table = self.dataset.items
        cols = [c for c in ("item_id", "title", "category") if c in table.columns]
        return {c: table[c].to_list() for c in cols}


def as_artifact(artifact: object) -> Artifact:
    """``artifact`` where it is an :class:`Artifact`, the artifact saved there where it is a
    path (``str`` or ``Path``), else a TypeError that says what to pass.

    Examples
    --------
    >>> as_artifact(3)
    Traceback (most recent call last):
    ...
    TypeError: expected an Artifact (or the path of a saved one), got int
    """
    if isinstance(artifact, Artifact):
        return artifact
    if isinstance(artifact, (str, Path)):
        return Artifact.load(artifact)
    raise TypeError(
        f"expected an Artifact (or the path of a saved one), got {type(artifact).__name__}"
    )
