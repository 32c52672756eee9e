"""From code arrays to the RawData frames, and writing them as a behaviorlm folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from behaviorlm.data.dataset import META_FILE as DATASET_META
from behaviorlm.data.dataset import run_folder_mark
from behaviorlm.data.errors import DataError
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.data.readers.tabular import table_files
from behaviorlm.data.synthetic.engine import A_VIEW, EVENT_ACTIONS, EventArrays
from behaviorlm.data.synthetic.vocab import CAUSE_GROUPS, DEVICES, SEARCH
from behaviorlm.data.synthetic.world import World
from behaviorlm.data.write import write_table
from behaviorlm.files import write_whole

#: The tables of a behaviorlm folder.
TABLES: tuple[str, ...] = ("events", "items", "users", "follows")
#: The file that marks a folder as written by :func:`write_simulation`: its tables of the
#: same names may be written over; the tables of a folder without it are the user's data.
SIMULATION_MARK = "simulation.json"
_MODEL_LETTERS = list("ABCDEFGHKLMNPRSTVWXZ")
#: Rows of events turned into strings at a time.
_CHUNK = 1 << 21


def _lookup(table: list[str] | list[str | None] | pl.Series, codes: pl.Expr) -> pl.Expr:
    """Strings of ``table`` at ``codes`` (a null code gives null)."""
    series = table if isinstance(table, pl.Series) else pl.Series(table, dtype=pl.String)
    return pl.lit(series).gather(codes)


def _ids(prefix: str, codes: pl.Expr) -> pl.Expr:
    """External ids: ``prefix`` followed by the code (null stays null)."""
    return pl.concat_str(pl.lit(prefix), codes.cast(pl.String))


def _id_table(prefix: str, n: int) -> pl.Series:
    """The ids of codes ``0..n-1``, to gather from (much faster than formatting every event)."""
    return pl.select(_ids(prefix, pl.int_range(n))).to_series()


def events_frame(world: World, ev: EventArrays) -> pl.DataFrame:
    """Events sorted by user (code order) then time; ``event_id`` is the row number.

    Generation is window by window and every session lies inside its window, so a stable sort
    by user alone leaves each user's events in time order. ``ev`` is consumed: its arrays are
    released as they are copied, to keep the peak memory of large simulations down.
    """
    perm = np.argsort(ev.user, kind="stable")
    new_id = np.empty(len(perm), dtype=np.int64)
    new_id[perm] = np.arange(len(perm), dtype=np.int64)
    cause = ev.cause[perm]
    ev.cause = new_id[:0]
    cause = np.where(cause >= 0, new_id[np.maximum(cause, 0)], -1)
    del new_id
    codes: dict[str, npt.NDArray[np.generic]] = {"e": cause}
    short = {"user": "u", "item": "i", "time": "t", "action": "a", "rating": "r", "query": "q"}
    short |= {"device": "d", "social": "s", "group": "g"}
    for name, key in short.items():
        codes[key] = getattr(ev, name)[perm]
        setattr(ev, name, getattr(ev, name)[:0])
    del perm, cause
    codes["c"] = world.users.city.astype(np.int16)[codes["u"]]
    frame = pl.DataFrame(codes)
    del codes
    # strings are built a slice at a time so their temporaries stay small
    ids = _id_table("u", len(world.users)), _id_table("i", len(world.items))
    parts = [
        _event_strings(world, frame.slice(start, _CHUNK), start, ids)
        for start in range(0, max(frame.height, 1), _CHUNK)
    ]
    del frame
    events = pl.concat(parts, rechunk=False)
    return events.cast(RAW_EVENT_DTYPES)  # type: ignore[arg-type]


def _event_strings(
    world: World,
    codes: pl.DataFrame,
    first_id: int,
    ids: tuple[pl.Series, pl.Series],
) -> pl.DataFrame:
    """The event columns of a slice of code rows whose first row is event ``first_id``."""
    c = pl.col
    return codes.select(
        _lookup(ids[0], c("u")).alias("user_id"),
        _lookup(ids[1], pl.when(c("i") >= 0).then(c("i"))).alias("item_id"),
        c("t").cast(pl.Int64).alias("timestamp"),
        _lookup(list(EVENT_ACTIONS), c("a")).alias("action"),
        pl.when(c("r") > 0).then(c("r")).cast(pl.Float64).alias("value"),
        _lookup(world.vocab.queries, pl.when(c("q") >= 0).then(c("q"))).alias("query"),
        _lookup(list(DEVICES), c("d")).alias("device"),
        _lookup(world.cities, c("c")).alias("location"),
        # where the view came from: a followee's share, or a search result (a view that the
        # session's search steered; its funnel events are the user's own doing)
        pl.when(c("s"))
        .then(pl.lit("social"))
        .when((c("g") == SEARCH) & (c("a") == A_VIEW))
        .then(pl.lit("search"))
        .otherwise(pl.lit("self"))
        .alias("source"),
        pl.int_range(first_id, first_id + pl.len(), dtype=pl.Int64).alias("event_id"),
        pl.when(c("e") >= 0).then(c("e")).cast(pl.Int64).alias("truth_cause_event"),
        _lookup(list(CAUSE_GROUPS), c("g")).alias("truth_cause_group"),
    )


def items_frame(world: World) -> pl.DataFrame:
    """One row per item: id, title, category, text, price, city, app_only, complement_id."""
    it, v = world.items, world.vocab
    c = pl.col
    codes = pl.DataFrame(
        {
            "cat": it.category,
            "m1": it.modifier,
            "m2": it.modifier2,
            "noun": it.noun,
            "letter": it.model_letter,
            "number": it.model_number,
            "price": it.price,
            "city": it.city,
            "app_only": it.app_only,
            "complement": it.complement,
        }
    )
    lines: list[str | None] = [w or None for w in v.line]
    mod, mod2, noun = (
        _lookup(v.modifiers, c("m1")),
        _lookup(v.modifiers, c("m2")),
        _lookup(v.nouns, c("noun")),
    )
    category = _lookup(v.names, c("cat"))
    model = pl.concat_str(_lookup(_MODEL_LETTERS, c("letter")), c("number").cast(pl.String))
    return codes.select(
        _ids("i", pl.int_range(pl.len(), dtype=pl.Int64)).alias("item_id"),
        pl.concat_str(
            _lookup(lines, c("cat")), mod, noun, model, separator=" ", ignore_nulls=True
        ).alias("title"),
        category.alias("category"),
        pl.concat_str(
            mod2,
            pl.lit("and"),
            mod,
            noun,
            pl.lit("from the"),
            category,
            pl.lit("range"),
            separator=" ",
        ).alias("text"),
        c("price").cast(pl.Float64),
        _lookup(world.cities, pl.when(c("city") >= 0).then(c("city"))).alias("city"),
        c("app_only").cast(pl.Boolean),
        _ids("i", pl.when(c("complement") >= 0).then(c("complement"))).alias("complement_id"),
    )


def users_frame(world: World) -> pl.DataFrame:
    """One row per user: id, home city, main device and the planted influence strength."""
    us = world.users
    c = pl.col
    return pl.DataFrame({"city": us.city, "device": us.device, "infl": us.influence}).select(
        _ids("u", pl.int_range(pl.len(), dtype=pl.Int64)).alias("user_id"),
        _lookup(world.cities, c("city")).alias("city"),
        _lookup(list(DEVICES), c("device")).alias("device"),
        c("infl").cast(pl.Float64).alias("truth_influence"),
    )


def follows_frame(world: World) -> pl.DataFrame:
    """Follow edges: follower_id follows followee_id since a time before the simulation."""
    f = world.follows
    c = pl.col
    return pl.DataFrame({"a": f.follower, "b": f.followee, "since": f.since}).select(
        _ids("u", c("a")).alias("follower_id"),
        _ids("u", c("b")).alias("followee_id"),
        c("since").cast(pl.Int64),
    )


def check_simulation_folder(out_dir: str | Path, format: str) -> Path:
    """The folder :func:`write_simulation` would write ``format`` tables to, checked (it
    raises as that function does) before any work.

    Examples
    --------
    >>> import tempfile
    >>> check_simulation_folder(tempfile.mkdtemp(), "tsv")
    Traceback (most recent call last):
    ...
    ValueError: format must be 'csv', 'parquet' or 'jsonl', got 'tsv'
    """
    if format not in ("csv", "parquet", "jsonl"):
        raise ValueError(f"format must be 'csv', 'parquet' or 'jsonl', got {format!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(
            f"{out} is a file; a simulation is written as a folder of tables",
            how="pass the path of a folder (it is created if missing)",
        )
    held = DATASET_META if (out / DATASET_META).is_file() else run_folder_mark(out)
    if held is not None:  # its files would be replaced by raw tables
        what = "a prepared data set" if held == DATASET_META else "a training run's folder"
        raise DataError(
            f"{out} is {what} (it holds {held})", how="write the simulation to a folder of its own"
        )
    simulated = (out / SIMULATION_MARK).is_file()
    earlier = _simulated_tables(out)  # an earlier simulation's, in any format: replaced
    for name in TABLES:  # each table in one file: any other a folder read would take
        for other in table_files(out, name):
            if other.name != f"{name}.{format}" and other.name not in earlier:
                raise FileExistsError(
                    f"{other} exists; remove it or write to another folder (a folder holds "
                    "each table in one file)"
                )
            if not simulated:  # the user's own data
                raise DataError(
                    f"simulating into {out} would overwrite {other.name}, and the folder has "
                    f"no {SIMULATION_MARK}: it is your data, or a simulation written before "
                    "simulate marked its folders",
                    how="write the simulation to a folder of its own, or remove the old tables",
                )
    return out


def _stamp(path: Path) -> list[int]:
    """A file's size and modification time (ns): what the mark keeps of each table."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _simulated_tables(out: Path) -> set[str]:
    """The table files of ``out`` that the simulation whose mark is there wrote, as it wrote
    them (the size and time the mark keeps): none without a mark, or with one that cannot be
    read; a file changed since is not one."""
    try:
        mark = json.loads((out / SIMULATION_MARK).read_text())
        stamps = mark["stamps"]
        return {
            str(name)
            for name in mark["tables"]
            if Path(str(name)).name == str(name)
            and (out / str(name)).is_file()
            and stamps.get(str(name)) == _stamp(out / str(name))
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def write_simulation(
    raw: RawData,
    out_dir: str | Path,
    *,
    format: Literal["csv", "parquet", "jsonl"] = "parquet",
) -> Path:
    """Write ``raw`` as a behaviorlm folder: ``events.<ext>`` and the side tables it has.

    Parameters
    ----------
    raw : RawData
        Typically the output of :func:`behaviorlm.data.synthetic.simulate`.
    out_dir : str or Path
        The folder; created if missing. It gets ``simulation.json`` beside the tables, and
        only a folder that has it (an earlier simulation) may have its tables written over.
    format : {"csv", "parquet", "jsonl"}
        File format of every table.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    DataError
        If the path is a file, the folder is a prepared data set or a training run's folder,
        or it holds tables of these names that no simulation wrote.
    FileExistsError
        If the folder already holds one of the tables in another file that no earlier
        simulation there wrote (another format, a compressed file, ``Events.csv``: a folder
        read could not tell which one to use); an earlier simulation's tables in another
        format are replaced.

    Examples
    --------
    >>> import tempfile
    >>> from behaviorlm.data.synthetic import simulate
    >>> out = write_simulation(simulate(20, seed=0), tempfile.mkdtemp(), format="csv")
    >>> sorted(p.name for p in out.iterdir())
    ['events.csv', 'follows.csv', 'items.csv', 'simulation.json', 'users.csv']
    """
    out = check_simulation_folder(out_dir, format)
    tables = {"events": raw.events, "items": raw.items, "users": raw.users, "follows": raw.follows}
    out.mkdir(parents=True, exist_ok=True)
    earlier = _simulated_tables(out)
    # the mark first: a run stopped while writing leaves tables that a rerun may replace (the
    # earlier simulation's in another format are in neither mark then: they go first)
    written = [f"{name}.{format}" for name, frame in tables.items() if frame is not None]
    for name in sorted(earlier - set(written)):
        (out / name).unlink(missing_ok=True)
    mark: dict[str, object] = {
        "written_by": "behaviorlm simulate",
        "format": format,
        "tables": written,
    }
    write_whole(out / SIMULATION_MARK, json.dumps(mark, indent=2) + "\n")
    for name, frame in tables.items():
        if frame is None:
            continue
        write_table(frame, out / f"{name}.{format}")
    # each table's size and time: a later simulation in another format replaces only tables
    # left as they were written
    mark["stamps"] = {name: _stamp(out / name) for name in written}
    write_whole(out / SIMULATION_MARK, json.dumps(mark, indent=2) + "\n")
    return out
