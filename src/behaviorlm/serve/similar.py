"""Similar items: the items nearest to one item.

- Neural models (``sasrec``, ``hstu``, ``mlp``): cosine similarity of the model's item
  embeddings (the output embeddings that score next items), ``method = "embedding_cosine"``.
- Every other model: cosine similarity of the items' user sets in the training timelines
  (how many users interacted with both items, divided by the geometric mean of their user
  counts), ``method = "cooccurrence_cosine"``; only items that share a user are listed.

Lists are ranked with the primitives of :mod:`behaviorlm.recommend` (one ordering rule:
higher score first, equal scores by lower item id).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from behaviorlm.models.base import Recommender
from behaviorlm.models.itemknn import user_items
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.recommend import decode, encode, item_mask, top_keys
from behaviorlm.schema import F32, Int, Sequences

Method = Literal["embedding_cosine", "cooccurrence_cosine"]


class ItemSimilarity:
    """Similarities of one item to every item, built once from a model and its training data.

    Examples
    --------
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> train = Sequences.from_lists([[1, 2], [1, 2, 3], [3, 4]], n_items=4)
    >>> sim = ItemSimilarity(Pop(PopConfig()).fit(train), train)
    >>> items, scores = sim.top(1, k=3)
    >>> sim.method, items.tolist()
    ('cooccurrence_cosine', [2, 3])
    """

    def __init__(self, model: Recommender, train: Sequences) -> None:
        self.n_items = model.n_items
        self.method: Method
        if isinstance(model, NeuralRecommender):
            self.method = "embedding_cosine"
            emb = model.module.item_embeddings().detach().float().numpy()[: self.n_items + 1]
            norm = np.linalg.norm(emb, axis=1, keepdims=True)
            self._unit: F32 = np.divide(emb, norm, out=np.zeros_like(emb), where=norm > 0)
        else:
            self.method = "cooccurrence_cosine"
            self._user_items: Any = user_items(train, train.items > 0)
            self._item_users: Any = self._user_items.T.tocsr()
            self._norm = np.sqrt(self._user_items.getnnz(axis=0)).astype(np.float32)

    def scores(self, item: int) -> F32:
        """(n_items + 1,) similarity of ``item`` to every item id (entry 0 is padding)."""
        if self.method == "embedding_cosine":
            cos: F32 = np.asarray(self._unit @ self._unit[item], dtype=np.float32)
            return cos
        users = self._item_users[item].indices
        counts = np.asarray(self._user_items[users].sum(axis=0), dtype=np.float32).ravel()
        denominator = self._norm * self._norm[item]
        cosine: F32 = np.divide(
            counts, denominator, out=np.zeros_like(counts), where=denominator > 0
        )
        cosine[counts == 0] = -np.inf  # no shared user: not similar at all
        return cosine

    def top(self, item: int, k: int) -> tuple[Int, F32]:
        """The ``k`` items most similar to ``item`` (never itself), best first."""
        scores = self.scores(item)
        scores[~item_mask(self.n_items, exclude_items=[item])] = -np.inf
        keys = top_keys(encode(scores[None, 1:], start=1), min(k, self.n_items))
        best_scores, best_items = decode(np.sort(keys, axis=1)[:, ::-1])
        found = best_scores[0] > -np.inf
        return best_items[0][found], best_scores[0][found]
