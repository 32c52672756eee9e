"""The event store: every event the service accepted, durable before it is acknowledged.

The service talks to an :class:`EventStore` (append a batch, read one user's events, export
everything); :class:`SQLiteStore` is the embedded default, so no database server has to run.
A server database can follow behind the same interface.

Durability. The SQLite file runs in WAL mode with ``synchronous=FULL``: a batch is one
transaction, and its commit returns only after the write-ahead log has been flushed to disk
(``fsync``), so an event acknowledged to a client survives a crash of the process or of the
machine. The cost is one ``fsync`` per batch (a fraction of a millisecond to a few
milliseconds, depending on the disk), which is why clients should post events in batches.
WAL mode lets readers (recommendations) proceed while a batch is being written.

Idempotency. An event may carry a client ``event_id``; the column is UNIQUE, so a retry of a
batch after a timeout or a crash never stores an event twice (the repeat is reported as a
duplicate). Events without an ``event_id`` are always stored.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from behaviorlm.data.raw import RAW_EVENT_DTYPES
from behaviorlm.data.write import write_table
from behaviorlm.schema import EVENT_COLUMNS

#: URL scheme of the embedded store: ``sqlite:///relative.db`` or ``sqlite:////absolute.db``.
SQLITE_PREFIX = "sqlite:///"


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """One event in the event schema (external ids), as stored.

    ``timestamp`` is seconds since 1970; ``event_id`` is the client's idempotency key.

    Examples
    --------
    >>> EventRecord(user_id="u1", item_id="i3", timestamp=10, action="view").source
    'self'
    """

    user_id: str
    item_id: str | None
    timestamp: int
    action: str
    value: float | None = None
    query: str | None = None
    device: str | None = None
    location: str | None = None
    source: str = "self"
    event_id: str | None = None


_COLUMNS = tuple(f.name for f in fields(EventRecord))
#: Parquet schema of :func:`export_events`: the event schema plus ``event_id``.
EXPORT_SCHEMA: dict[str, pl.DataType] = {**RAW_EVENT_DTYPES, "event_id": pl.String()}


class EventStore(Protocol):
    """What the service needs from an event store (:class:`SQLiteStore` is the embedded one;
    a server database can follow behind the same methods).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store: EventStore = open_store(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'e.db'}")
    >>> store.append([EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view")])
    [True]
    >>> [e.item_id for e in store.user_events("u1")], store.count()
    (['i1'], 1)
    """

    def append(self, events: Sequence[EventRecord]) -> list[bool]:
        """Store a batch durably (all or nothing); per event True = stored, False = its
        ``event_id`` was already stored (nothing written for it)."""
        ...

    def user_events(self, user_id: str) -> list[EventRecord]:
        """The stored events of one user, in the order they were stored."""
        ...

    def user_events_after(self, user_id: str, after: int) -> tuple[list[EventRecord], list[int]]:
        """The user's events stored after storage position ``after`` (0: all), in storage
        order, and the storage position of each (positive, increasing): pass the last one
        back to read only what came since.

        Positions must become visible in increasing order: once a reader has seen position
        ``n``, no event at a smaller position may appear later (``serve.own_events`` relies
        on it). SQLite's assigns them under the write lock it takes at ``BEGIN IMMEDIATE``;
        a store whose positions are handed out before commit (a database sequence) does not
        qualify as it is."""
        ...

    def events_at(self, positions: Sequence[int]) -> list[EventRecord]:
        """The events at these storage positions, in the order given (LookupError for a
        position that holds none): an explanation's labels of the few events it shows."""
        ...

    def all_events(self) -> pl.DataFrame:
        """Every stored event, in storage order, with the columns of :data:`EXPORT_SCHEMA`."""
        ...

    def count(self) -> int:
        """Number of stored events."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///`` URL; ValueError for anything else.

    Examples
    --------
    >>> str(sqlite_path("sqlite:///events.db")), str(sqlite_path("sqlite:////var/ev.db"))
    ('events.db', '/var/ev.db')
    """
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        raise ValueError(
            f"unsupported event store {url!r}: use sqlite:///path/to/events.db "
            "(four slashes for an absolute path)"
        )
    name = url[len(SQLITE_PREFIX) :]
    if name == ":memory:":
        raise ValueError("an in-memory event store loses every event: give a file path")
    return Path(name)


def open_store(url: str) -> EventStore:
    """Open (creating if needed) the event store named by ``url``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "events.db"
    >>> store = open_store(f"sqlite:///{db}")
    >>> store.append([EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view",
    ...                           event_id="e1")] * 2)
    [True, False]
    >>> store.count()
    1
    >>> store.close()
    """
    return SQLiteStore(sqlite_path(url))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id   TEXT NOT NULL,
    item_id   TEXT,
    timestamp INTEGER NOT NULL,
    action    TEXT NOT NULL,
    value     REAL,
    query     TEXT,
    device    TEXT,
    location  TEXT,
    source    TEXT NOT NULL,
    event_id  TEXT UNIQUE,
    received  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, seq);
"""


#: Storage positions asked for in one ``IN (...)`` list.
_IN_LIST = 500


def _check_own(path: Path, timeout_s: float) -> None:
    """sqlite3.DatabaseError where the SQLite file at ``path`` holds anything but an event
    store: other tables, or an ``events`` table of other columns. Read through a read-only
    connection, so a file refused is left as it was (its journal mode too). A missing or
    empty file passes: it becomes a new store."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)
    try:
        found = {
            (str(kind), str(name))
            for kind, name in conn.execute(
                "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%'"
            )
        }
        columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(events)")}
    finally:
        conn.close()
    tables = {name for _, name in found}
    if tables - {"events"}:
        others = ", ".join(sorted(tables - {"events"})[:5])
        raise sqlite3.DatabaseError(
            f"it holds tables of another program ({others}); name a file of its own"
        )
    if ("view", "events") in found:
        raise sqlite3.DatabaseError(
            "its events are a view of another program's; name a file of its own"
        )
    expected = {"seq", "received", *_COLUMNS}
    if tables and columns != expected:
        raise sqlite3.DatabaseError(
            "its events table is not an event store's (it lacks "
            f"{', '.join(sorted(expected - columns)) or 'nothing'}; it adds "
            f"{', '.join(sorted(columns - expected)) or 'nothing'}); name a file of its own"
        )


def _records(rows: list[Any]) -> list[EventRecord]:
    """Records of ``SELECT seq, <the record's columns>`` rows."""
    return [EventRecord(**dict(zip(_COLUMNS, row[1:], strict=True))) for row in rows]


class SQLiteStore:
    """The embedded event store: one SQLite file in WAL mode, ``synchronous=FULL``.

    Each thread gets its own connection (SQLite connections are not shared between
    threads); writers are serialised by SQLite's lock, waiting up to ``busy_timeout_s``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = SQLiteStore(pathlib.Path(tempfile.mkdtemp()) / "events.db")
    >>> event = EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view", event_id="e1")
    >>> store.append([event, event])  # an event_id is stored once
    [True, False]
    >>> store.close()
    """

    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 10.0, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise FileNotFoundError(
                2, "the folder of the event store does not exist", str(self.path.parent)
            )
        self.read_only = read_only
        wal = self.path.with_name(self.path.name + "-wal")
        locked_out = read_only and not os.access(self.path.parent, os.W_OK)
        if locked_out and wal.is_file() and wal.stat().st_size > 0:
            # events that a read without the log's shared index would miss
            raise ValueError(
                f"{self.path} cannot be read in a read-only folder: its write-ahead log "
                f"({wal.name}) holds events not yet in the file; copy both to a writable "
                "folder, or open the store once where it can be written"
            )
        self._immutable = locked_out  # no writer can be there, and no shared memory
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            if not read_only:  # a file of another program is refused before it is changed
                _check_own(self.path, busy_timeout_s)
            conn = self._connection()
            if read_only:
                found = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
                ).fetchone()
                if found is None:
                    raise sqlite3.DatabaseError("it holds no events table")
            else:
                conn.executescript(_SCHEMA)
                # a store that cannot be written takes no event: say so now, not at each post
                # (a file opened read-only by SQLite starts transactions but refuses writes)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("DELETE FROM events WHERE 0")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:  # e.g. "file is not a database", "readonly"
            self.close()
            raise ValueError(f"{self.path} cannot be opened as an event store: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.read_only:  # changes nothing: no table, no journal mode
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                if self._immutable:
                    uri += "&immutable=1"
                conn = sqlite3.connect(
                    uri, uri=True, timeout=self._timeout, check_same_thread=False
                )
            else:
                # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _drop_connection(self) -> None:
        """Close this thread's connection (the next call opens a fresh one)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._connections.remove(conn)
            conn.close()

    def append(self, events: Sequence[EventRecord]) -> list[bool]:
        """Insert a batch in one transaction; returns per event whether it was stored."""
        conn = self._connection()
        received = time.time()
        stored: list[bool] = []
        sql = (
            f"INSERT INTO events ({', '.join(_COLUMNS)}, received) "
            f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))}) ON CONFLICT (event_id) DO NOTHING"
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                cursor = conn.execute(sql, (*astuple(event), received))
                stored.append(cursor.rowcount == 1)
            conn.execute("COMMIT")  # returns after the WAL is synced (synchronous=FULL)
        except BaseException:
            # SQLite may have rolled back already (a full disk): the first error is the one
            # to report, and a connection whose rollback fails is not used again
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._drop_connection()
            raise
        return stored

    def user_events(self, user_id: str) -> list[EventRecord]:
        """One user's events in storage order."""
        return self.user_events_after(user_id, 0)[0]

    def user_events_after(self, user_id: str, after: int) -> tuple[list[EventRecord], list[int]]:
        """One user's events stored after sequence number ``after``, and their numbers."""
        rows = (
            self._connection()
            .execute(
                f"SELECT seq, {', '.join(_COLUMNS)} FROM events WHERE user_id = ? AND seq > ? "
                "ORDER BY seq",
                (user_id, after),
            )
            .fetchall()
        )
        return _records(rows), [int(row[0]) for row in rows]

    def events_at(self, positions: Sequence[int]) -> list[EventRecord]:
        """The events with these sequence numbers, in the order given."""
        conn = self._connection()
        found: dict[int, EventRecord] = {}
        wanted = sorted(set(positions))
        for lo in range(0, len(wanted), _IN_LIST):  # within SQLite's limit of bound values
            chunk = wanted[lo : lo + _IN_LIST]
            rows = conn.execute(
                f"SELECT seq, {', '.join(_COLUMNS)} FROM events "
                f"WHERE seq IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update(zip((int(row[0]) for row in rows), _records(rows), strict=True))
        missing = [p for p in wanted if p not in found]
        if missing:
            raise LookupError(f"no stored event at position(s) {missing[:5]}")
        return [found[p] for p in positions]

    def all_events(self) -> pl.DataFrame:
        """Every stored event as a frame of :data:`EXPORT_SCHEMA`, in storage order."""
        columns = [c for c in EXPORT_SCHEMA if c in EVENT_COLUMNS or c == "event_id"]
        rows = self._connection().execute(f"SELECT {', '.join(columns)} FROM events ORDER BY seq")
        return pl.DataFrame(rows.fetchall(), schema=EXPORT_SCHEMA, orient="row")

    def count(self) -> int:
        """Number of stored events."""
        row = self._connection().execute("SELECT count(*) FROM events").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


#: The key-value pair :func:`export_events` keeps in its Parquet file's schema, beside the
#: file's row count (:data:`EXPORT_ROWS`): the mark by which a later export knows the file as
#: its own. A table merged from it by other means has no mark (polars writes none), or one
#: whose count is not its own (pyarrow keeps the schema's).
EXPORT_MARK = {"behaviorlm": "export-events"}
EXPORT_ROWS = "behaviorlm.rows"


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is a file :func:`export_events` wrote (its schema holds
    :data:`EXPORT_MARK` and its own row count): the export may replace it, even where a
    folder read takes it for the events table. A table of the same columns written otherwise
    (an export merged with the training events, for a retrain) is not one.

    Examples
    --------
    >>> import tempfile
    >>> from behaviorlm.data.write import write_table
    >>> path = Path(tempfile.mkdtemp()) / "events.parquet"
    >>> mark = {**EXPORT_MARK, EXPORT_ROWS: "0"}
    >>> _ = write_table(pl.DataFrame(schema=EXPORT_SCHEMA), path, metadata=mark)
    >>> is_export(path), is_export(path.with_name("other.parquet"))
    (True, False)
    >>> pl.DataFrame(schema=EXPORT_SCHEMA).write_parquet(path)  # the columns, not the mark
    >>> is_export(path)
    False
    """
    path = Path(path)
    if not path.is_file():
        return False
    import pyarrow.parquet as pq  # 30 MiB that a server never needs

    try:
        info = pq.read_metadata(path)
    except (OSError, ValueError):  # not Parquet (pyarrow's ArrowInvalid is a ValueError)
        return False
    metadata = info.schema.to_arrow_schema().metadata or {}
    marked = all(metadata.get(k.encode()) == v.encode() for k, v in EXPORT_MARK.items())
    return marked and metadata.get(EXPORT_ROWS.encode()) == str(info.num_rows).encode()


def has_export_columns(path: str | Path) -> bool:
    """Whether ``path`` is a Parquet file with the columns of an export, in its order (an
    export, or a table of the same layout: :func:`is_export` tells them apart).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.parquet"
    >>> pl.DataFrame(schema=EXPORT_SCHEMA).write_parquet(path)
    >>> has_export_columns(path), is_export(path)
    (True, False)
    """
    path = Path(path)
    if not path.is_file():
        return False
    try:
        return list(pl.read_parquet_schema(path)) == list(EXPORT_SCHEMA)
    except (pl.exceptions.PolarsError, OSError):  # not Parquet
        return False


def export_events(store_url: str, out: str | Path) -> int:
    """Write every event of the store to a Parquet file in the event schema; returns the count.

    The file reads back with :func:`behaviorlm.read`, so a retrain sees everything the
    service took in (``event_id`` is kept as the events' pass-through id column).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = open_store(f"sqlite:///{folder / 'events.db'}")
    >>> _ = store.append([EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view")])
    >>> store.close()
    >>> export_events(f"sqlite:///{folder / 'events.db'}", folder / "events.parquet")
    1
    """
    path = sqlite_path(store_url)
    if not path.is_file():
        raise FileNotFoundError(2, "no such event store", str(path))
    store = SQLiteStore(path, read_only=True)  # an export changes nothing in the file
    try:
        frame = store.all_events()
    except sqlite3.DatabaseError as exc:  # an "events" table of another program
        raise ValueError(f"{path} cannot be read as an event store: {exc}") from exc
    finally:
        store.close()
    mark = {**EXPORT_MARK, EXPORT_ROWS: str(frame.height)}
    write_table(frame, out, metadata=mark)  # one that fails leaves an earlier file whole
    return frame.height
