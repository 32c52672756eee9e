"""Write tables in the formats :func:`behaviorlm.data.io.read` reads, whole or in parts.

:class:`TableWriter` takes a table a part at a time (``behaviorlm recommend --all-users
--out`` writes each step of users as it is ranked, so the whole list never sits in memory)
and :func:`write_table` writes one table. The format is the one the file extension names
(``.csv``, ``.tsv``, ``.parquet`` / ``.pq``, ``.jsonl`` / ``.ndjson``). The parts go to a
hidden file beside the target (a name of its own, so two writers never share one), renamed
onto it when the writer closes, so the file at the path is never half written: a run that
fails or is interrupted leaves any earlier file there as it was. A path that is a symbolic
link is written where the link points, and a file replaced keeps its permissions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import polars as pl

from behaviorlm.data.readers.tabular import TABLE_EXTENSIONS, TABLE_FORMATS
from behaviorlm.files import as_new_file

if TYPE_CHECKING:  # imported where a Parquet file is written: 30 MiB that a server never needs
    import pyarrow.parquet as pq


def table_format(path: str | Path) -> str:
    """The table format the extension of ``path`` names; ValueError for any other file.

    Examples
    --------
    >>> table_format("recs.PARQUET"), table_format("recs.ndjson")
    ('parquet', 'jsonl')
    """
    fmt = TABLE_EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the file must end in {', '.join(TABLE_EXTENSIONS)}")
    return fmt


class TableWriter:
    """Write a table in parts to ``path``, in the format its extension names.

    Use it as a context manager: :meth:`write` each part (every part with the first one's
    columns and types), and the file appears at ``path`` when the block ends without an
    error. ``rows`` counts the rows written.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.csv"
    >>> with TableWriter(path) as out:
    ...     out.write(pl.DataFrame({"a": [1, 2]}))
    ...     out.write(pl.DataFrame({"a": [3]}))
    >>> path.read_text().splitlines(), out.rows
    (['a', '1', '2', '3'], 3)
    """

    def __init__(self, path: str | Path, *, metadata: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.metadata = dict(metadata or {})
        if self.metadata and table_format(path) != "parquet":
            raise ValueError(f"{path}: only a Parquet file keeps metadata")
        self.format = table_format(path)
        self.rows = 0
        self._schema: pl.Schema | None = None
        self._target = self.path.resolve()  # through a symbolic link, to the file it names
        self._part = self._target
        self._file: IO[bytes] | None = None
        self._parquet: pq.ParquetWriter | None = None

    def __enter__(self) -> TableWriter:
        if self._target.is_dir():
            raise IsADirectoryError(f"{self.path} is a folder; name a file to write")
        self._target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            dir=self._target.parent, prefix=f".{self._target.name}.", suffix=".part"
        )
        self._part = Path(name)
        self._file = os.fdopen(handle, "wb")
        return self

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame``'s rows; its columns and types must be the first part's."""
        if self._file is None:
            raise RuntimeError("TableWriter writes inside a with block")
        first = self._schema is None
        if self._schema is None:
            self._schema = frame.schema
        elif frame.schema != self._schema:
            raise ValueError(
                f"every part needs the columns {dict(self._schema)}, got {dict(frame.schema)}"
            )
        if self.format == "parquet":
            table = frame.to_arrow()
            if self._parquet is None:
                import pyarrow.parquet as pq

                schema = table.schema
                if self.metadata:
                    schema = schema.with_metadata({**(schema.metadata or {}), **self.metadata})
                self._parquet = pq.ParquetWriter(self._file, schema)
            self._parquet.write_table(table)
        elif self.format == "jsonl":
            frame.write_ndjson(self._file)
        else:
            separator = TABLE_FORMATS[self.format] or ","
            frame.write_csv(self._file, separator=separator, include_header=first)
        self.rows += frame.height

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._file is not None:
                self._file.close()
            if kind is not None:
                return
            if self._schema is None:
                raise ValueError(f"{self.path}: no table was written")
            if self._target.exists():
                shutil.copymode(self._target, self._part)
            else:  # as a new file would be made
                as_new_file(self._part)
            os.replace(self._part, self._target)
        finally:
            self._file = self._parquet = None
            self._part.unlink(missing_ok=True)  # gone already once it replaced the target


def write_table(
    frame: pl.DataFrame, path: str | Path, *, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``frame`` in the table format its file extension names (those
    :func:`behaviorlm.data.io.read` reads), creating the folder; returns the path.
    ``metadata``: key-value pairs kept in a Parquet file's schema (other formats refuse them).

    Examples
    --------
    >>> import tempfile
    >>> out = write_table(pl.DataFrame({"a": [1]}), Path(tempfile.mkdtemp()) / "t.tsv")
    >>> out.read_text().splitlines()
    ['a', '1']
    """
    with TableWriter(path, metadata=metadata) as out:
        out.write(frame)
    return out.path
