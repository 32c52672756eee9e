"""RawData: parsed input in the event schema, with external ids, before preprocessing.

Every reader (``data.io``) and the simulator (``data.synthetic``) produce a RawData;
``data.preprocess`` turns it into a :class:`behaviorlm.data.dataset.Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from behaviorlm.data.errors import Report

#: dtypes of RawData.events; readers fill absent columns with nulls (source defaults to "self").
RAW_EVENT_DTYPES: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "item_id": pl.String(),
    "timestamp": pl.Int64(),
    "action": pl.String(),
    "value": pl.Float64(),
    "query": pl.String(),
    "device": pl.String(),
    "location": pl.String(),
    "source": pl.String(),
}


@dataclass
class RawData:
    """Events and side tables as read, with external ids as strings.

    Attributes
    ----------
    events : polars.DataFrame
        The columns of ``RAW_EVENT_DTYPES`` in that order, in input order, plus any ``truth_*``
        columns (and ``event_id`` where the input has one). ``timestamp`` is seconds since the
        epoch, or the input position where ``has_time`` is false.
    items : polars.DataFrame or None
        ``item_id`` (String) and any of title, category, text, price, extra columns.
    users : polars.DataFrame or None
        ``user_id`` (String) and attribute columns.
    follows : polars.DataFrame or None
        ``follower_id``, ``followee_id`` (String), ``since`` (Int64, nullable).
    name : str
        Where the data came from (file or data set name).
    has_time : bool
        False when the input had no timestamps and the order of rows is the order of events.
    report : Report
        Rows in / out of every reading step, with drops by reason.
    """

    events: pl.DataFrame
    items: pl.DataFrame | None = None
    users: pl.DataFrame | None = None
    follows: pl.DataFrame | None = None
    name: str = ""
    has_time: bool = True
    report: Report = field(default_factory=Report)
