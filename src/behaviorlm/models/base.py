"""The interface every model answers: fit, score all items for a batch of histories, save, load.

Models see internal ids only (``1..n_items``, 0 = padding) and never import ``data``:
they consume :class:`behaviorlm.schema.Sequences`. Ranking (masking seen items,
filters, top-k) happens in ``behaviorlm.recommend``, never here.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from safetensors.numpy import load_file, save_file

from behaviorlm.config import from_dict, to_dict
from behaviorlm.files import as_new_file
from behaviorlm.schema import F32, Bool, Sequences

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "model.json"


def target_events(train: Sequences, target_actions: Sequence[int] = ()) -> Bool:
    """(E,) the events of ``train`` to predict: those with an item and, where
    ``target_actions`` are given, of one of those action codes.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 0]], n_items=2, actions=[[1, 4, 9]])
    >>> target_events(s).tolist(), target_events(s, [4]).tolist()
    ([True, True, False], [False, True, False])
    """
    keep = train.items > 0
    if len(target_actions):
        keep &= np.isin(train.actions, np.asarray(target_actions, dtype=np.int64))
    return keep


class Recommender(ABC):
    """Base class of all models.

    Subclasses set ``name`` and ``config_class``, implement :meth:`fit`, :meth:`score`,
    :meth:`state` and :meth:`from_state`. Saving writes the config as JSON and the arrays
    of :meth:`state` as safetensors, so loading never executes code from the artifact.

    Examples
    --------
    >>> from behaviorlm.models import MODELS
    >>> from behaviorlm.schema import Sequences
    >>> config_class, model_class = MODELS["pop"]
    >>> model = model_class(config_class()).fit(Sequences.from_lists([[1, 2], [2]], n_items=3))
    >>> model.score(Sequences.from_lists([[1]], n_items=3)).shape
    (1, 3)
    """

    name: ClassVar[str]
    config_class: ClassVar[type[Any]]

    def __init__(self, config: Any) -> None:
        self.config = config
        self.n_items = 0

    @abstractmethod
    def fit(self, train: Sequences, target_actions: Sequence[int] = ()) -> Self:
        """Learn from the training timelines; returns self.

        ``target_actions`` (action codes; empty: every event with an item) are the events
        to predict, as ``split.target_actions`` says: the model learns which items those
        events are on, from timelines of every action.
        """

    @abstractmethod
    def score(self, histories: Sequences, items: slice | None = None) -> F32:
        """Scores of items for each history row.

        Parameters
        ----------
        histories : Sequences
            One row per user to score; rows may be empty.
        items : slice, optional
            Contiguous range of internal item ids to score (default ``1..n_items``), so that
            callers can walk a large catalogue in chunks.

        Returns
        -------
        (R, len(range)) float32: higher is better; column ``j`` is item ``items.start + j``.
        """

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """The fitted arrays to save (numeric numpy arrays only)."""

    @abstractmethod
    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the arrays written by :meth:`state`."""

    def item_range(self, items: slice | None) -> tuple[int, int]:
        """Resolve ``items`` to ``(start, stop)`` within ``1..n_items + 1``."""
        if self.n_items <= 0:
            raise RuntimeError(f"{self.name} is not fitted")
        if items is None:
            return 1, self.n_items + 1
        start = 1 if items.start is None else int(items.start)
        if start < 1:
            raise ValueError(f"item ids start at 1 (0 is padding), got {items}")
        stop = self.n_items + 1 if items.stop is None else min(self.n_items + 1, int(items.stop))
        if items.step not in (None, 1) or start > stop:
            raise ValueError(f"items must be a contiguous range, got {items}")
        return start, stop

    def meta(self) -> dict[str, Any]:
        """What ``model.json`` holds: name, config, catalogue size (subclasses may add)."""
        return {"model": self.name, "config": to_dict(self.config), "n_items": self.n_items}

    def restore_meta(self, meta: dict[str, Any]) -> None:
        """Restore what :meth:`meta` added beyond name, config and n_items (default: nothing)."""
        return None

    def write_weights(self, file: Path) -> None:
        """Write the arrays of :meth:`state` as safetensors."""
        save_file({k: np.ascontiguousarray(v) for k, v in self.state().items()}, str(file))

    def read_weights(self, file: Path) -> None:
        """Read the weights written by :meth:`write_weights`."""
        self.load_state(load_file(str(file)))

    def check_rows(self, arrays: dict[str, np.ndarray], **extra: int) -> None:
        """ValueError where an array of ``arrays`` has not one row per item id (``0..n_items``)
        plus the ``extra`` rows given by name (an ``indptr`` has one more): weights of
        another catalogue, which would rank without a word.

        Examples
        --------
        >>> from behaviorlm.models.pop import Pop, PopConfig
        >>> model = Pop(PopConfig())
        >>> model.n_items = 3
        >>> model.check_rows({"popularity": np.zeros(5)})
        Traceback (most recent call last):
        ...
        ValueError: popularity has 5 rows where 3 items need 4 (weights of another catalogue)
        """
        for name, array in arrays.items():
            rows = self.n_items + 1 + extra.get(name, 0)
            if len(array) != rows:
                raise ValueError(
                    f"{name} has {len(array)} rows where {self.n_items} items need {rows} "
                    "(weights of another catalogue)"
                )

    def save(self, directory: str | Path) -> None:
        """Write ``model.json`` (:meth:`meta`) and ``weights.safetensors``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(json.dumps(self.meta(), indent=2) + "\n")
        self.write_weights(path / WEIGHTS_FILE)
        as_new_file(path / WEIGHTS_FILE)  # the safetensors writer makes it private

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Read a model written by :meth:`save` (no code is executed from the files)."""
        path = Path(directory)
        meta = json.loads((path / CONFIG_FILE).read_text())
        if meta["model"] != cls.name:
            raise ValueError(f"{path} holds a {meta['model']!r} model, not {cls.name!r}")
        model = cls(from_dict(cls.config_class, meta["config"]))
        model.n_items = int(meta["n_items"])
        model.restore_meta(meta)
        model.read_weights(path / WEIGHTS_FILE)
        return model


def as_model(model: object) -> Recommender:
    """``model`` where it is a :class:`Recommender`, else a TypeError that says what to pass
    (for an artifact: its ``.model``).

    Examples
    --------
    >>> as_model("runs/markov")
    Traceback (most recent call last):
    ...
    TypeError: expected a model (a Recommender, such as an artifact's .model), got str
    """
    if isinstance(model, Recommender):
        return model
    if isinstance(getattr(model, "model", None), Recommender):
        raise TypeError(f"expected a model, got an {type(model).__name__}: pass its .model")
    kind = type(model).__name__
    raise TypeError(f"expected a model (a Recommender, such as an artifact's .model), got {kind}")
