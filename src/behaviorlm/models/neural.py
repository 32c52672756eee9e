"""What every sequence model shares: the event token embedding and the Recommender wrapper.

A token is one event. Its embedding is the sum of an item embedding (plus a bag of query-word
embeddings for searches) and embeddings of the action, the time-gap bucket, the device, the
location and the source (self / social / search); the position embedding belongs to each
model.
Each component is a feature group that a config can switch off, and that explanations can
remove one at a time (:meth:`TokenEmbedding.components`).

A model file (``sasrec.py``, ``hstu.py``, ``mlp.py``) holds a config, an ``nn.Module`` with
``encode(batch) -> (B, T, D)`` and a :class:`NeuralRecommender` subclass that builds it. The
training loop lives in ``behaviorlm.train``; scoring, saving and loading live here.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from behaviorlm.models.base import Recommender
from behaviorlm.models.batch import FeatureSizes, SequenceBatch, build_batch, time_gap_buckets
from behaviorlm.models.traced import TracedEncoder
from behaviorlm.schema import F32, SEARCH_SOURCE, SELF_SOURCE, Int, Sequences

#: Token components by feature group; "history" (item + query words) is always on.
GROUPS = ("actions", "time", "search", "social", "location", "device")

#: Logit elements a loss over the whole catalogue holds at once: rows per chunk = this //
#: catalogue size (the training loop's full softmax, ``mlp``'s squared error). On the CPU a
#: chunk stays in cache; a GPU takes larger chunks (:data:`GPU_CHUNK_ELEMENTS`).
CHUNK_ELEMENTS = 1 << 21
#: Logit elements per chunk on a GPU (256 MiB of float32 logits): fewer, larger products.
GPU_CHUNK_ELEMENTS = 1 << 26


def chunk_elements(device: torch.device) -> int:
    """The logit elements a loss over the catalogue holds at once on ``device``.

    Examples
    --------
    >>> chunk_elements(torch.device("cpu")) == CHUNK_ELEMENTS
    True
    """
    return CHUNK_ELEMENTS if device.type == "cpu" else GPU_CHUNK_ELEMENTS


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """Which token components a model uses (all on by default; absent data is simply zero)."""

    actions: bool = True
    time: bool = True
    search: bool = True
    social: bool = True
    location: bool = True
    device: bool = True


class TokenEmbedding(nn.Module):
    """Sum of the event components (docs/ARCHITECTURE.md); ``item`` is shared with the output layer.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2]], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> emb = TokenEmbedding(sizes, dim=8, features=FeatureConfig())
    >>> emb(build_batch(s, 5, sizes)).shape
    torch.Size([1, 2, 8])
    """

    def __init__(self, sizes: FeatureSizes, dim: int, features: FeatureConfig) -> None:
        super().__init__()
        self.features = features
        self.item = nn.Embedding(sizes.items, dim, padding_idx=0)
        self.query = nn.EmbeddingBag(sizes.query_words, dim, mode="sum", padding_idx=0)
        self.action = nn.Embedding(sizes.actions, dim, padding_idx=0)
        self.gap = nn.Embedding(sizes.gaps, dim, padding_idx=0)
        self.device = nn.Embedding(sizes.devices, dim, padding_idx=0)
        self.location = nn.Embedding(sizes.locations, dim, padding_idx=0)
        self.source = nn.Embedding(sizes.sources, dim, padding_idx=0)
        #: Source code of a click on a search result, whose source component is search
        #: activity; -1 where the data set's sources have no "search"
        #: (:meth:`NeuralRecommender.use_sources`).
        self.search_source = SEARCH_SOURCE
        #: Whether training had such clicks (their source row is trained): then the model
        #: has a search group even without query words (:meth:`find_search_clicks`, which
        #: also sets :attr:`search_source`).
        self.search_clicks = False
        for table in (self.item, self.action, self.gap, self.device, self.location, self.source):
            nn.init.normal_(table.weight, std=dim**-0.5)
            with torch.no_grad():
                table.weight[0].zero_()
        nn.init.normal_(self.query.weight, std=dim**-0.5)

    def components(self, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        """Each enabled component as ``(B, T, D)``, keyed by feature group.

        A group whose table holds only the padding code (the data has no such feature) is
        left out: its embedding would be zero everywhere. "search" is there also without
        query words where training had clicks on search results (:attr:`search_clicks`):
        their source is search activity.
        """
        f = self.features
        b, t = batch.items.shape  # sizes, not ints: a trace stays general in both
        out = {"history": self.item(batch.items)}
        if f.search and (self.query.num_embeddings > 1 or self.search_clicks):
            words = batch.query_words.reshape(b * t, -1)  # (B*T, Q); all padding: zero
            out["search"] = self.query(words).reshape(b, t, -1)
        clicks = f.search and self.search_clicks
        lookups = (
            ("actions", f.actions, self.action, batch.actions),
            ("time", f.time, self.gap, batch.gaps),
            ("social", f.social or clicks, self.source, self.read_sources(batch.sources)),
            ("location", f.location, self.location, batch.locations),
            ("device", f.device, self.device, batch.devices),
        )
        for group, enabled, table, codes in lookups:
            if enabled and table.num_embeddings > 1:
                out[group] = table(codes)
        return out

    @property
    def search_code(self) -> int:
        """The source code whose component is search activity in this model: the clicks on
        search results, where it reads them as such (search on, clicks in training); -1
        where it does not (they then read as the user's own views, or as unknown)."""
        return self.search_source if self.features.search and self.search_clicks else -1

    def find_search_clicks(self, code: int) -> bool:
        """Take ``code`` as :attr:`search_source` and set :attr:`search_clicks` from the
        trained source rows (after training or loading); returns whether either changed."""
        before = (self.search_source, self.search_clicks)
        self.search_source = code
        self.search_clicks = bool(code > 0 and (seen_codes(self.source) == code).any())
        return (self.search_source, self.search_clicks) != before

    def read_sources(self, codes: torch.Tensor) -> torch.Tensor:
        """Source codes as the feature switches allow: the search source (a click on a search
        result, :attr:`search_source`) is search activity, every other source social. With
        search off a click reads as the user's own view (``self``); with social off every
        other source reads as unknown (0, a zero row), so self and social look alike. The
        table stays under "social" in :meth:`components`, so with social off and search on
        that entry holds the search clicks alone."""
        social, search = self.features.social, self.features.search
        if not self.search_clicks or (social and search):
            return codes
        searched = codes == self.search_source
        if not search:
            return torch.where(searched, SELF_SOURCE, codes)
        return torch.where(searched, codes, 0)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        """(B, T, D) token embeddings (zero at padding)."""
        parts = iter(self.components(batch).values())
        total = next(parts)
        for part in parts:
            total = total + part
        return total * batch.mask.unsqueeze(-1)


def unseen_to_zero(tokens: TokenEmbedding, train: Sequences) -> None:
    """Zero the context rows (action, time gap, device, location, source, query word) of
    codes that no training event has.

    A table is sized by the largest code in training (the gap table by its fixed number of
    buckets), so a code below it that training never had (a query word first searched after
    the cut, an action only of test events, a gap longer than any in training) would keep its
    random first row: no event looks it up, so no gradient reaches it, and weight decay only
    shrinks it. A zero row stays zero through training (no gradient, and decay keeps zero
    at zero) and reads as the unknown code 0 does; a trained model's zero rows are thus the
    codes it never saw (:func:`seen_codes`). Item rows are left alone: they are also the
    output layer.

    Examples
    --------
    >>> from dataclasses import replace
    >>> s = Sequences.from_lists([[1, 2]], n_items=2)
    >>> s = replace(s, actions=np.array([1, 3]))  # action 2 never occurs
    >>> tokens = TokenEmbedding(FeatureSizes.of(s), dim=4, features=FeatureConfig())
    >>> unseen_to_zero(tokens, s)
    >>> [bool(row.any()) for row in tokens.action.weight]
    [False, True, False, True]
    """
    zero_rows_but(
        tokens,
        {
            "action": train.actions,
            "gap": time_gap_buckets(train),
            "device": train.devices,
            "location": train.locations,
            "source": train.sources,
            "query": train.extra.get("query_words"),
        },
    )


def unfed_to_zero(tokens: TokenEmbedding, inputs: SequenceBatch) -> None:
    """Zero the context rows (time gap, device, location, source, query word) of codes that
    no training input has: the training loop's refinement of :func:`unseen_to_zero`, from the
    windows it feeds (``TrainingSet.inputs``). Actions keep their rows: an action that is
    only ever a target is learned by the next-action head, and the explanations read the
    action table's rows as what the model learned (``trained_action``).

    A code can occur in the training timelines and still never be fed: on a row's last event
    only (a target, never an input), or before the last window of a long row trained without
    sliding windows. Its row gets no gradient, so it would keep its random start and a scoring
    pass would read it as if learned; zeroed, it reads as unknown and :func:`seen_codes` leaves
    it out.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from behaviorlm.models.batch import build_batch
    >>> s = replace(Sequences.from_lists([[1, 2]], n_items=2), devices=np.array([1, 2]))
    >>> tokens = TokenEmbedding(FeatureSizes.of(s), dim=4, features=FeatureConfig())
    >>> unseen_to_zero(tokens, s)
    >>> seen_codes(tokens.device).tolist()  # both occur in the timeline ...
    [1, 2]
    >>> inputs = build_batch(Sequences.from_lists([[1]], n_items=2), 1, FeatureSizes.of(s))
    >>> inputs = replace(inputs, devices=torch.ones_like(inputs.devices))  # ... one is fed
    >>> unfed_to_zero(tokens, inputs)
    >>> seen_codes(tokens.device).tolist()
    [1]
    """
    mask = inputs.mask.bool()
    zero_rows_but(  # actions aside: an action only ever a target is learned by the head
        tokens,
        {
            "gap": inputs.gaps[mask],
            "device": inputs.devices[mask],
            "location": inputs.locations[mask],
            "source": inputs.sources[mask],
            "query": inputs.query_words[mask],
        },
    )


def zero_rows_but(tokens: TokenEmbedding, codes: Mapping[str, Any]) -> None:
    """Zero every row of each named token table (``tokens.<name>``) but those of ``codes``
    (None: leave that table as it is).

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2]], n_items=3)
    >>> tokens = TokenEmbedding(FeatureSizes.of(s), dim=4, features=FeatureConfig())
    >>> zero_rows_but(tokens, {"item": np.array([1, 2])})
    >>> [bool(row.any()) for row in tokens.item.weight]
    [False, True, True, False]
    """
    with torch.no_grad():
        for name, present in codes.items():
            if present is None:
                continue
            table = getattr(tokens, name)
            if isinstance(present, torch.Tensor):
                present = present.cpu().numpy()
            found = np.unique(np.asarray(present).astype(np.int64, copy=False))
            keep = torch.zeros(table.num_embeddings, dtype=torch.bool)
            keep[torch.as_tensor(found[(found >= 0) & (found < table.num_embeddings)])] = True
            table.weight[~keep.to(table.weight.device)] = 0.0


def seen_codes(table: nn.Embedding | nn.EmbeddingBag) -> Int:
    """Codes (1 and up) whose row of a trained token table is not zero: those its training
    data had (:func:`unseen_to_zero`; a model set up before that rule keeps random rows for
    the others, so every code of its table counts).

    Examples
    --------
    >>> from dataclasses import replace
    >>> s = replace(Sequences.from_lists([[1, 2]], n_items=2), actions=np.array([1, 3]))
    >>> tokens = TokenEmbedding(FeatureSizes.of(s), dim=4, features=FeatureConfig())
    >>> unseen_to_zero(tokens, s)
    >>> seen_codes(tokens.action).tolist()
    [1, 3]
    """
    with torch.no_grad():
        rows = table.weight.detach()[1:].abs().sum(dim=1) > 0
    out: Int = np.flatnonzero(rows.cpu().numpy()) + 1
    return out


class SequenceModule(nn.Module):
    """A sequence model body: token embedding -> ``encode`` -> hidden states, two heads.

    Subclasses implement :meth:`encode`. The next-item head is tied to the item embeddings;
    the next-action head is a linear layer over the hidden state.
    """

    #: Whether :meth:`encode_last` may be traced (:mod:`behaviorlm.models.traced`): it runs
    #: the same operations for every batch size and length (sizes read from tensors, never
    #: turned into Python numbers), and its only branch on the data is on padding.
    traceable: ClassVar[bool] = False

    def __init__(self, sizes: FeatureSizes, dim: int, features: FeatureConfig) -> None:
        super().__init__()
        self.sizes = sizes
        self.dim = dim
        self.tokens = TokenEmbedding(sizes, dim, features)
        self.action_head = nn.Linear(dim, sizes.actions)

    @abstractmethod
    def encode(self, batch: SequenceBatch) -> torch.Tensor:
        """(B, T, D) hidden state at every position; position ``t`` sees events ``<= t`` only."""

    def encode_last(self, batch: SequenceBatch) -> torch.Tensor:
        """(B, D) hidden state at the last position only: ``encode(batch)[:, -1]``.

        The state that predicts the next event, all that scoring and explanations need. A
        model may override it to skip work the other positions need (SASRec and HSTU run
        their last layer for the last query only).
        """
        return self.encode(batch)[:, -1]

    def encode_last_without(
        self, batch: SequenceBatch, drop: torch.Tensor, gaps: torch.Tensor
    ) -> torch.Tensor:
        """(K, D) :meth:`encode_last` of the single row of ``batch`` without column ``drop[k]``.

        Leave-one-out occlusion scores every deletion of a timeline with this. ``batch`` is
        one row (no padding, as :meth:`NeuralRecommender.batch` gives a single timeline);
        it may hold one column more than the model reads: the older event that enters the
        window when a column is deleted. ``drop`` (K,) are columns of it, ``gaps`` (K,) as in
        :meth:`SequenceBatch.without`. A row with one column leaves an empty timeline (one
        padding column). The default builds the ``K`` rows; a model may share the work they
        have in common (SASRec and HSTU run the events before each deleted one once,
        :mod:`behaviorlm.models.deletions`).
        """
        if len(drop) == 0:
            return torch.zeros(0, self.dim, device=batch.mask.device)
        return self.encode_last(batch.without(drop, gaps))

    def item_embeddings(self) -> torch.Tensor:
        """(N + 1, D) output embeddings of all items (row 0 = padding)."""
        return self.tokens.item.weight

    def item_rows(self, index: slice | torch.Tensor) -> torch.Tensor:
        """Output embeddings of the items ``index`` (a slice or ids): ``item_embeddings()[index]``.

        A model whose output table is a row-wise function of its weights (HSTU's cosine scores)
        computes only these rows, so scoring a chunk of a large catalogue or a sampled softmax
        costs what its rows cost.
        """
        return self.item_embeddings()[index]

    def item_bias(self) -> torch.Tensor | None:
        """(N + 1,) output bias of all items, or None (the default: scores are dot products)."""
        return None

    def item_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """A model's own next-item loss over selected positions, or None for the shared one.

        ``hidden`` is (M, D) at the positions that have a target, ``targets`` (M,) item ids.
        """
        return None

    def logits(self, hidden: torch.Tensor, items: slice | None = None) -> torch.Tensor:
        """Scores ``(..., n)`` of items ``items`` (default all, including padding at 0)."""
        sel = items if items is not None else slice(None)
        out = hidden @ self.item_rows(sel).T
        bias = self.item_bias()
        return out if bias is None else out + bias[sel]


class NeuralRecommender(Recommender):
    """A Recommender around a :class:`SequenceModule`.

    Subclasses set ``name`` and ``config_class`` and implement :meth:`build`. The config must
    have ``max_len``. Fitting goes through ``behaviorlm.train`` (the shared training loop).
    """

    module: SequenceModule

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.sizes: FeatureSizes | None = None
        self.traced: TracedEncoder | None = None
        #: The data set's code of the "search" source (:meth:`use_sources`), -1 for none.
        self.search_source = SEARCH_SOURCE

    @abstractmethod
    def build(self, sizes: FeatureSizes) -> SequenceModule:
        """A freshly initialised module for these vocabulary sizes."""

    def setup(self, train: Sequences, seed: int = 0) -> SequenceModule:
        """Create the module for the vocabularies of ``train`` (called by the training loop)."""
        torch.manual_seed(seed)
        self.sizes = FeatureSizes.of(train)
        self.n_items = train.n_items
        self.module = self.build(self.sizes)
        unseen_to_zero(self.module.tokens, train)
        self._find_search_clicks()
        self.traced = None
        return self.module

    def use_sources(self, sources: list[str]) -> None:
        """Read the source codes of the data set with this vocabulary: the code of "search"
        (a click on a search result) there, if any. A data set prepared before "search" was
        a built-in source may give code 3 to another source or to followees' events.

        Examples
        --------
        >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
        >>> model = SASRec(SASRecConfig(dim=8, layers=1))
        >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
        >>> model.use_sources(["self", "social"])
        >>> model.module.tokens.search_source
        -1
        """
        self.search_source = sources.index("search") + 1 if "search" in sources else -1
        if self.sizes is not None:  # else setup applies it
            self._find_search_clicks()

    def zero_unfed(self, inputs: SequenceBatch) -> None:
        """:func:`unfed_to_zero` on the module's tokens, from the training windows' inputs
        (called by the training loop once it has built them), and the search-click switch
        read again from the rows as they now are, as a loaded artifact reads it."""
        unfed_to_zero(self.module.tokens, inputs)
        self._find_search_clicks()

    def _find_search_clicks(self) -> None:
        if self.module.tokens.find_search_clicks(self.search_source):
            self.traced = None  # traces hold the switches' codes

    def trace(self) -> bool:
        """Encode through TorchScript traces from now on (:mod:`behaviorlm.models.traced`).

        For serving: a small batch costs less CPU, and the model's thread does not wait for
        the interpreter lock at every operation. The traces are made on first use (one for
        batches with padding, one for batches without) and checked against the eager pass;
        scores stay the same. Returns whether the model is traceable
        (:attr:`SequenceModule.traceable`); the others stay eager. ``model.traced = None``
        goes back to eager.

        Examples
        --------
        >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
        >>> model = SASRec(SASRecConfig(dim=8, heads=2, layers=1))
        >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
        >>> eager = model.score(Sequences.from_lists([[1, 2]], n_items=3))
        >>> model.trace()
        True
        >>> bool(np.allclose(model.score(Sequences.from_lists([[1, 2]], n_items=3)), eager,
        ...                  atol=1e-5))
        True
        """
        if self.sizes is None:
            raise RuntimeError(f"{self.name} is not fitted")
        if not self.module.traceable:
            return False
        self.module.eval()
        self.traced = TracedEncoder(self.module)
        return True

    def shared_copy(self) -> Self:
        """The same model on the same weights (shared, not copied) in module objects of its own.

        Forward hooks put on one copy's modules (an explanation's,
        :mod:`behaviorlm.explain.components`) never touch the other's forward passes, so a
        service explains with one copy while it ranks with the other. The copy encodes
        eagerly (no traces); a change of the weights through either shows in both. Hooks on
        the modules when the copy is taken come with it: take it before adding any.

        Examples
        --------
        >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
        >>> model = SASRec(SASRecConfig(dim=8, heads=2, layers=1))
        >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
        >>> twin = model.shared_copy()
        >>> twin.module is model.module
        False
        >>> twin.module.tokens.item.weight.data_ptr() == model.module.tokens.item.weight.data_ptr()
        True
        """
        if self.sizes is None:
            raise RuntimeError(f"{self.name} is not fitted")
        other = copy.copy(self)
        # the module objects copied, every parameter and buffer kept as it is (a memo that maps
        # each tensor to itself); building on the meta device instead loaded torch's meta
        # registrations, 70 MiB more resident memory in a server
        tensors = (*self.module.parameters(), *self.module.buffers())
        other.module = copy.deepcopy(self.module, {id(t): t for t in tensors})
        other.traced = None
        return other

    def fit(self, train: Sequences, target_actions: Sequence[int] = ()) -> Self:
        raise TypeError(
            f"{self.name} is trained by the shared loop: use behaviorlm.train.fit_model "
            "or `behaviorlm train`"
        )

    def batch(self, histories: Sequences, max_len: int | None = None) -> SequenceBatch:
        """Histories as a model input batch: each row's last ``max_len`` events.

        ``max_len`` defaults to the model's window (occlusion asks for one event more).
        """
        if self.sizes is None:
            raise RuntimeError(f"{self.name} is not fitted")
        window = int(self.config.max_len) if max_len is None else max_len
        return build_batch(histories, window, self.sizes)

    @torch.inference_mode()
    def hidden(self, histories: Sequences, batch_size: int = 512) -> torch.Tensor:
        """(R, D) hidden state at the last event of each row (the state that predicts next).

        It is computed on the module's device (a GPU while the training loop validates) and
        returned there. Rows are encoded in batches of similar length (a stable sort by
        length), so a batch is padded only to its own longest row; the result is in the input
        order. It is computed in inference mode, so the result is an inference tensor:
        ``.clone()`` it before an in-place change or a use that autograd records.

        Examples
        --------
        >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
        >>> model = SASRec(SASRecConfig(dim=8, heads=2, layers=1))
        >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
        >>> model.hidden(Sequences.from_lists([[1, 2], [3]], n_items=3)).shape
        torch.Size([2, 8])
        """
        if self.module.training:  # eval() walks every submodule: skip it when already set
            self.module.eval()
        device = self.module.tokens.item.weight.device
        if len(histories) == 0:
            return torch.zeros(0, self.module.dim, device=device)
        traced = self.traced if self.traced and self.traced.module is self.module else None
        encode = traced or self.module.encode_last  # a trace of another module is not used

        def batch(rows: Sequences) -> SequenceBatch:
            built = self.batch(rows)
            return built if device.type == "cpu" else built.to(device)

        if len(histories) <= batch_size:  # one batch: no reordering needed
            return encode(batch(histories)).float()
        order = np.argsort(np.minimum(histories.lengths, self.config.max_len), kind="stable")
        out = torch.empty(len(histories), self.module.dim, device=device)
        for lo in range(0, len(histories), batch_size):
            rows = order[lo : lo + batch_size]
            hidden = encode(batch(histories.select(rows)))
            out[torch.from_numpy(rows).to(device)] = hidden.float()
        return out

    def score(self, histories: Sequences, items: slice | None = None) -> F32:
        start, stop = self.item_range(items)
        with torch.inference_mode():
            scores = self.module.logits(self.hidden(histories), slice(start, stop))
        return scores.float().cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        self._find_search_clicks()

    def meta(self) -> dict[str, Any]:
        """Name, config, catalogue size and the embedding table sizes."""
        if self.sizes is None:
            raise RuntimeError(f"{self.name} is not fitted")
        return {**super().meta(), "sizes": self.sizes.to_dict()}

    def restore_meta(self, meta: dict[str, Any]) -> None:
        """Rebuild the module for the saved table sizes (weights follow)."""
        self.sizes = FeatureSizes(**meta["sizes"])
        self.module = self.build(self.sizes)
        self.traced = None

    def write_weights(self, file: Path) -> None:
        tensors = {k: v.detach().contiguous() for k, v in self.module.state_dict().items()}
        save_file(tensors, str(file))

    def read_weights(self, file: Path) -> None:
        self.module.load_state_dict(load_file(str(file)))
        self._find_search_clicks()
        self.module.eval()
