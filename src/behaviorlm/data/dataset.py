"""The Dataset: events, side tables and the one owner of the id mapping.

A Dataset is what ``prepare`` writes and every later step reads. Its events are sorted
by user, then time, then input order (a stable sort), so each user's timeline is one
contiguous block and row ``r`` of the event table is event id ``r``.

Internal ids are contiguous: users ``1..n_users``, items ``1..n_items``; ``0`` means
padding / none (a search event without an item has item 0). Categorical context
(action, device, location, source) is coded ``1..len(vocab)`` with 0 = unknown.

On disk a Dataset is a folder::

    dataset.json    counts, vocabularies, schema, data-quality report, provenance
    events.parquet  user, item, timestamp, action, value, query, device, location, source,
                    and ground-truth columns (``truth_*``) that never reach a model
    items.parquet   item, item_id (external), title, category, text, price, extra columns
    users.parquet   user, user_id (external), attribute columns
    follows.parquet follower, followee, since (internal ids)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from behaviorlm.data.errors import DataError
from behaviorlm.schema import ACTIONS, TRUTH_PREFIX, Int, Sequences, builtin_name

FORMAT_VERSION = 1
META_FILE = "dataset.json"
TABLES = ("events", "items", "users", "follows")

#: Dtypes of the internal event table (before any ``truth_*`` columns).
EVENT_DTYPES: dict[str, pl.DataType] = {
    "user": pl.Int64(),
    "item": pl.Int64(),
    "timestamp": pl.Int64(),
    "action": pl.Int64(),
    "value": pl.Float32(),
    "query": pl.String(),
    "device": pl.Int64(),
    "location": pl.Int64(),
    "source": pl.Int64(),
}
#: Categorical event columns and the vocabulary that codes them.
VOCAB_COLUMNS = ("action", "device", "location", "source")
#: Words of a search query kept per event (``Sequences.extra["query_words"]``, 0 = none).
QUERY_WORDS = 4
#: A word of a search query: a run of characters between white space (the separators
#: ``\x1c``-``\x1f`` named too: Python's ``\s`` holds them, polars' does not).
WORD = r"[^\s\x1c-\x1f]+"
#: How a data set splits queries into words (``vocab["query_split"]``): on white space, or, in
#: a data set whose word vocabulary was made before that rule, on single spaces.
WHITE_SPACE, SPACE = "white_space", "space"


def query_text_words(query: str, split: str = WHITE_SPACE) -> list[str]:
    """The words of one query as :meth:`Dataset.query_words` reads them (lower case, split on
    white space, or with ``split = SPACE`` on single spaces), for queries coded one at a time
    (the service's live events).

    Examples
    --------
    >>> query_text_words("  Red   Shoes\tsize 42 ")
    ['red', 'shoes', 'size', '42']
    >>> query_text_words("red  shoes", SPACE)  # a data set made before the white-space rule
    ['red', '', 'shoes']
    """
    lower = query.lower()
    return lower.split(" ") if split == SPACE else re.findall(WORD, lower)


#: Files that mark a training run's folder: its model, the one a run that has not finished set
#: aside, a run's checkpoint (``behaviorlm.artifact.META_FILE`` and ``PREVIOUS_DIR``, and
#: ``behaviorlm.train.checkpoint.META_FILE``: layers above).
RUN_MARKS = ("artifact.json", "previous/artifact.json", "checkpoint.json")


def run_folder_mark(folder: str | Path) -> str | None:
    """The first of :data:`RUN_MARKS` that ``folder`` holds (it is a run's), or None.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> run_folder_mark(folder) is None, (folder / "checkpoint.json").write_text("{}") > 0
    (True, True)
    >>> run_folder_mark(folder)
    'checkpoint.json'
    """
    return next((m for m in RUN_MARKS if (Path(folder) / m).is_file()), None)


def check_prepare_paths(source: str | Path, directory: str | Path) -> None:
    """DataError where preparing ``source`` into ``directory`` would go wrong: ``source`` is a
    prepared data set already, a file :meth:`Dataset.save` writes would replace ``source``, or
    ``directory`` is no place for a data set (:func:`check_dataset_folder`).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_prepare_paths(folder / "ratings.csv", folder)  # beside it: fine
    >>> check_prepare_paths(folder, folder)
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: ...
    """
    src, out = Path(source).resolve(), Path(directory).resolve()
    if (src / META_FILE).is_file():
        raise DataError(
            f"{source} is a prepared data set already (it holds {META_FILE})",
            how="train on it directly, or prepare the raw files it came from",
        )
    if src == out or src in _saved_files(out):
        raise DataError(
            f"preparing {source} into {directory} would overwrite the input",
            how="write the prepared data set to another folder",
        )
    check_dataset_folder(directory)


def check_dataset_folder(directory: str | Path) -> None:
    """DataError where :meth:`Dataset.save` into ``directory`` would break something: it holds
    a trained model, or tables of the names it writes that no prepared data set wrote there
    (a folder's raw ``items.parquet``, say).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_dataset_folder(folder)
    >>> _ = (folder / "items.parquet").write_bytes(b"raw items")  # the user's own table
    >>> check_dataset_folder(folder)
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: preparing into ... would overwrite items.parquet, ...
    """
    out = Path(directory).resolve()
    if out.exists() and not out.is_dir():
        raise DataError(
            f"{directory} is a file; a prepared data set is a folder",
            how="pass the path of a folder (it is created if missing)",
        )
    held = run_folder_mark(out)
    if held:
        raise DataError(
            f"{directory} is a training run's folder (it holds {held})",
            how="write the prepared data set to a folder of its own",
        )
    # a folder that is no prepared data set may hold the raw side tables of the same names
    if (out / META_FILE).is_file():
        return
    others = sorted(p.name for p in _saved_files(out) if p.is_file())
    if others:
        raise DataError(
            f"preparing into {directory} would overwrite {', '.join(others)}, which no "
            "prepared data set wrote there",
            how="write the prepared data set to a folder of its own",
        )


def _saved_files(folder: Path) -> set[Path]:
    """The files :meth:`Dataset.save` writes into ``folder``."""
    return {folder / f"{name}.parquet" for name in TABLES} | {folder / META_FILE}


@dataclass
class Dataset:
    """Events with internal ids, side tables, vocabularies and metadata.

    Attributes
    ----------
    events : polars.DataFrame
        Columns of ``EVENT_DTYPES`` plus ``truth_*`` columns; sorted by (user, time, input order).
    items : polars.DataFrame
        One row per item, ``item`` = 1..n_items in order, ``item_id`` = external id.
    users : polars.DataFrame
        One row per user, ``user`` = 1..n_users in order, ``user_id`` = external id.
    follows : polars.DataFrame
        ``follower``, ``followee`` (internal user ids), ``since`` (nullable).
    vocab : dict[str, list[str]]
        For each of ``VOCAB_COLUMNS`` the names of codes 1, 2, ...
    meta : dict
        Name, counts, whether timestamps are real times, the data-quality report.

    Examples
    --------
    >>> from behaviorlm.data.synthetic import simulate
    >>> from behaviorlm.data.preprocess import preprocess
    >>> ds = preprocess(simulate(n_users=50, seed=1))
    >>> seqs = ds.sequences()
    >>> len(seqs) == ds.n_users
    True
    """

    events: pl.DataFrame
    items: pl.DataFrame
    users: pl.DataFrame
    follows: pl.DataFrame
    vocab: dict[str, list[str]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.users.height

    @property
    def n_items(self) -> int:
        return self.items.height

    @property
    def n_events(self) -> int:
        return self.events.height

    def sequences(self) -> Sequences:
        """All timelines as ragged arrays, one row per user (row ``u - 1`` is user ``u``)."""
        ids = np.arange(self.events.height, dtype=np.int64)
        return self.timelines_of(self.events, "user", ids, self.query_words())

    def timelines_of(
        self, frame: pl.DataFrame, owner: str, event_ids: Int, query_words: Int
    ) -> Sequences:
        """One row per user of ``frame``'s events, which are sorted by ``owner`` (a column of
        internal user ids) and time and have the event table's columns; row ``u - 1`` is user
        ``u``. ``event_ids`` and ``query_words`` belong to the events (their rows in the event
        table, :meth:`query_words` of those rows).

        Examples
        --------
        >>> from behaviorlm.data.preprocess import preprocess
        >>> from behaviorlm.data.synthetic import simulate
        >>> ds = preprocess(simulate(20, seed=0))
        >>> first = ds.events.filter(pl.col("user") == 1).head(2)
        >>> ids = np.array([0, 1])
        >>> rows = ds.timelines_of(first, "user", ids, ds.query_words()[ids])
        >>> rows.lengths[:2].tolist(), rows.event_ids.tolist()
        ([2, 0], [0, 1])
        """
        counts = np.bincount(frame[owner].to_numpy(), minlength=self.n_users + 1)[1:]
        offsets = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])

        def col(name: str) -> Int:
            return frame[name].fill_null(0).to_numpy().astype(np.int64, copy=False)

        return Sequences(
            offsets=offsets,
            users=np.arange(1, self.n_users + 1, dtype=np.int64),
            items=col("item"),
            actions=col("action"),
            timestamps=col("timestamp"),
            event_ids=event_ids,
            values=frame["value"].fill_null(float("nan")).to_numpy().astype(np.float32, copy=False),
            devices=col("device"),
            locations=col("location"),
            sources=col("source"),
            n_items=self.n_items,
            extra={"query_words": query_words},
        )

    def query_vocab(self) -> list[str]:
        """Distinct lower-case words of all search queries, sorted (codes ``1..len``).

        Computed once and kept in ``vocab["query_word"]``, so it is saved with the data set and
        an artifact codes new queries exactly as in training (unknown words get 0).
        """
        if "query_word" not in self.vocab:
            self.vocab["query_split"] = [WHITE_SPACE]
            words = (
                self.events.select(self._words(pl.col("query").drop_nulls()))
                .explode("query")
                .filter(pl.col("query") != "")
                .unique()
                .sort("query")
            )
            self.vocab["query_word"] = words["query"].to_list()
        return self.vocab["query_word"]

    @property
    def query_split(self) -> str:
        """How queries split into words: :data:`WHITE_SPACE`, or :data:`SPACE` for a word
        vocabulary made before that rule (an artifact trained then codes as it was trained)."""
        if "query_word" in self.vocab and "query_split" not in self.vocab:
            return SPACE
        return WHITE_SPACE

    def _words(self, query: pl.Expr) -> pl.Expr:
        """The words of ``query`` (lower case) by :attr:`query_split`."""
        lower = query.str.to_lowercase()
        return lower.str.split(" ") if self.query_split == SPACE else lower.str.extract_all(WORD)

    def query_words(self, max_words: int = QUERY_WORDS) -> Int:
        """(E, max_words) codes of the first words of each event's query; 0 = no word.

        Words are the runs of characters between white space (so repeated spaces, tabs and
        line breaks hold no slot), lower-cased, as the service codes live queries."""
        vocab = pl.DataFrame(
            {"word": self.query_vocab()}, schema={"word": pl.String()}
        ).with_row_index("code", offset=1)
        words = (
            self.events.select(self._words(pl.col("query")).list.head(max_words))
            .with_row_index("event")
            .explode("query")
            .with_columns(pl.int_range(pl.len()).over("event").alias("slot"))
            .join(vocab, left_on="query", right_on="word", how="inner")
        )
        out = np.zeros((self.n_events, max_words), dtype=np.int64)
        out[words["event"].to_numpy(), words["slot"].to_numpy()] = words["code"].to_numpy()
        return out

    def action_name(self, name: str) -> str:
        """The data set's name for the action ``name``: ``name`` itself where the vocabulary
        has it (a data set prepared before built-in names were folded may hold a case
        variant), else the built-in action it spells in another case (``Purchase``), as data
        files read; unchanged where neither.

        Examples
        --------
        >>> from behaviorlm.data.synthetic import simulate
        >>> from behaviorlm.data.preprocess import preprocess
        >>> ds = preprocess(simulate(n_users=30, seed=0))
        >>> ds.action_name(" Purchase"), ds.action_name("teleport")
        ('purchase', 'teleport')
        """
        return name if name in self.vocab["action"] else builtin_name(name, ACTIONS)

    def action_code(self, name: str) -> int:
        """Code of an action name (:meth:`action_name`: ``Purchase`` is ``purchase``); raises
        DataError if the data set has no such action."""
        name = self.action_name(name)
        try:
            return self.vocab["action"].index(name) + 1
        except ValueError:
            raise DataError(
                f"action {name!r} does not occur in this data set",
                how=f"its events' actions: {', '.join(self.event_actions())}",
            ) from None

    def event_actions(self, on_items: bool = False) -> list[str]:
        """Names of the actions that the data set's events (``on_items``: those on an item,
        not searches) have, in code order (the action vocabulary also holds every built-in
        action, with or without events).

        Examples
        --------
        >>> from behaviorlm.data.synthetic import simulate
        >>> from behaviorlm.data.preprocess import preprocess
        >>> ds = preprocess(simulate(n_users=30, seed=0))
        >>> ds.event_actions()[-2:], ds.event_actions(on_items=True)[-1]
        (['share', 'search'], 'share')
        """
        events = self.events.filter(pl.col("item") > 0) if on_items else self.events
        codes = events.get_column("action").unique().sort().to_list()
        names = self.vocab["action"]
        return [names[c - 1] for c in codes if 1 <= c <= len(names)]

    def acted_code(self, name: str) -> int:
        """Code of an action that the data set's events on items have; DataError naming them
        otherwise (where an action marks what counts as seen, one without such events, a
        search say, would leave nothing out without a word).

        Examples
        --------
        >>> from behaviorlm.data.synthetic import simulate
        >>> from behaviorlm.data.preprocess import preprocess
        >>> preprocess(simulate(n_users=30, seed=0)).acted_code("purchase")
        4
        """
        code, name = self.action_code(name), self.action_name(name)
        acted = self.event_actions(on_items=True)
        if name not in acted:
            raise DataError(
                f"no event of this data set on an item has the action {name!r}",
                how=f"the actions of its events on items: {', '.join(acted)}",
            )
        return code

    def user_index(self, user_ids: list[str] | pl.Series) -> Int:
        """Internal ids of external user ids; unknown ids map to 0."""
        return _lookup(self.users, "user_id", "user", user_ids)

    def item_index(self, item_ids: list[str] | pl.Series) -> Int:
        """Internal ids of external item ids; unknown ids map to 0."""
        return _lookup(self.items, "item_id", "item", item_ids)

    def model_columns(self) -> list[str]:
        """Event columns a model may read (not ground truth, not the input's own event ids)."""
        return [
            c for c in self.events.columns if not c.startswith(TRUTH_PREFIX) and c != "event_id"
        ]

    def save(self, directory: str | Path, *, checked: bool = True) -> Path:
        """Write the Dataset as Parquet tables plus ``dataset.json``; returns the folder.

        Refuses (DataError) a training run's folder and one whose tables of the same names
        no prepared data set wrote (:func:`check_dataset_folder`); an earlier data set is
        replaced. ``checked=False``: a folder that is the caller's own part (an artifact's
        ``dataset/``, whatever an interrupted save left there), written without the check."""
        path = Path(directory)
        if checked:
            check_dataset_folder(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            getattr(self, name).write_parquet(path / f"{name}.parquet")
        meta = {
            "format_version": FORMAT_VERSION,
            "vocab": self.vocab,
            "schema": {name: dict(getattr(self, name).schema) for name in TABLES},
            **self.meta,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a Dataset written by :meth:`save` (no re-parsing of the original input)."""
        path = Path(directory)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise DataError(
                f"{path} is not a prepared data set (no {META_FILE})",
                how="run `behaviorlm prepare INPUT OUT_DIR` first",
            )
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict) or "vocab" not in meta:
                raise ValueError("no vocab")
        except (OSError, ValueError) as exc:  # damaged: one line naming the file
            raise DataError(
                f"{meta_path} is damaged ({exc})", how="prepare the data again"
            ) from exc
        version = meta.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise DataError(
                f"{path} has data set format {version}, this version reads {FORMAT_VERSION}",
                how="prepare the data again",
            )
        vocab = meta.pop("vocab")
        schema = meta.pop("schema", None) or {}
        try:
            tables = {
                name: pl.read_parquet(path / f"{name}.parquet", glob=False) for name in TABLES
            }
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise DataError(
                f"cannot read the data set: {exc}".splitlines()[0],
                where=str(path),
                how="prepare the data again",
            ) from exc
        for name, frame in tables.items():  # a table replaced since (raw tables written over)
            missing = [c for c in schema.get(name, {}) if c not in frame.columns]
            if missing:
                raise DataError(
                    f"{name}.parquet lacks the column(s) {', '.join(missing)} that {META_FILE} "
                    "names: the table was replaced after the data set was prepared",
                    where=str(path),
                    how="prepare the data again",
                )
        return cls(vocab=vocab, meta=meta, **tables)


def _lookup(table: pl.DataFrame, external: str, internal: str, ids: list[str] | pl.Series) -> Int:
    """Internal ids of external ids (0 where unknown); ids given as numbers are looked up as
    they print (7 as "7"), as a file's ids are read as text.

    Examples
    --------
    >>> table = pl.DataFrame({"user_id": ["7", "u1"], "user": [1, 2]})
    >>> _lookup(table, "user_id", "user", [7, "u1", 8]).tolist()
    [1, 2, 0]
    """
    if isinstance(ids, pl.Series):
        series = ids.cast(pl.String)
    else:
        series = pl.Series([None if i is None else str(i) for i in ids], dtype=pl.String)
    keys = pl.DataFrame({external: series})
    joined = keys.join(
        table.select(external, internal), on=external, how="left", maintain_order="left"
    )
    return joined[internal].fill_null(0).to_numpy().astype(np.int64)
