"""Tables written whole or in parts: every format reads back the same rows, and the file at
the path is never half written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from behaviorlm.data.io import read
from behaviorlm.data.readers.tabular import TABLE_EXTENSIONS, TABLE_FORMATS
from behaviorlm.data.write import TableWriter, write_table

PARTS = [
    pl.DataFrame({"user_id": ["u1", "u1"], "rank": [1, 2], "score": [0.5, 0.25]}),
    pl.DataFrame(
        {"user_id": [], "rank": [], "score": []},
        schema={"user_id": pl.String, "rank": pl.Int64, "score": pl.Float64},
    ),
    pl.DataFrame({"user_id": ["u2"], "rank": [1], "score": [0.75]}),
]


def read_back(path: Path) -> pl.DataFrame:
    fmt = TABLE_EXTENSIONS[path.suffix]
    if fmt == "parquet":
        return pl.read_parquet(path)
    if fmt == "jsonl":
        return pl.read_ndjson(path)
    return pl.read_csv(path, separator=TABLE_FORMATS[fmt] or ",")


@pytest.mark.parametrize("suffix", sorted(TABLE_EXTENSIONS))
def test_parts_read_back_as_one_table(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "deep" / f"lists{suffix}"
    with TableWriter(path) as out:
        for part in PARTS:
            out.write(part)
    assert out.rows == 3
    assert read_back(path).equals(pl.concat(PARTS))  # one header, the empty part adds nothing
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert read_back(write_table(PARTS[0], path)).equals(PARTS[0])  # replaces the file


def test_an_interrupted_write_leaves_the_earlier_file(tmp_path: Path) -> None:
    path = write_table(PARTS[0], tmp_path / "lists.parquet")

    def interrupted() -> None:
        with TableWriter(path) as out:
            out.write(PARTS[2])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert pl.read_parquet(path).equals(PARTS[0])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_parts_must_agree_and_be_written(tmp_path: Path) -> None:
    path = tmp_path / "lists.csv"

    def disagreeing() -> None:
        with TableWriter(path) as out:
            out.write(PARTS[0])
            out.write(PARTS[0].rename({"rank": "position"}))

    with pytest.raises(ValueError, match="every part needs the columns"):
        disagreeing()
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="no table was written"), TableWriter(path):
        pass
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="must end in"):
        TableWriter(tmp_path / "lists.txt")
    with pytest.raises(RuntimeError, match="with block"):
        TableWriter(path).write(PARTS[0])


def test_a_written_events_table_reads_as_events(tmp_path: Path) -> None:
    events = pl.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"], "timestamp": [1, 2]})
    path = tmp_path / "events.jsonl"
    with TableWriter(path) as out:
        out.write(events[:1])
        out.write(events[1:])
    assert read(path).events["item_id"].to_list() == ["x", "y"]


def test_links_permissions_folders_and_two_writers(tmp_path: Path) -> None:
    real = write_table(PARTS[0], tmp_path / "real.csv")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_table(PARTS[2], link)
    assert link.is_symlink()  # written where the link points
    assert read_back(real).equals(PARTS[2])
    assert real.stat().st_mode & 0o777 == 0o640  # the replaced file keeps its permissions
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_table(PARTS[0], folder)
    # two writers of one path never share a temporary file; the last to close wins
    path = tmp_path / "both.jsonl"
    with TableWriter(path) as first, TableWriter(path) as second:
        first.write(PARTS[0])
        second.write(PARTS[2])
    assert read_back(path).equals(PARTS[0])  # the outer block closes last
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_pyarrow_is_imported_only_to_write_parquet() -> None:
    """The package and its server leave pyarrow (30 MiB resident) unloaded until a Parquet
    part is written."""
    code = (
        "import sys, behaviorlm, behaviorlm.cli, behaviorlm.serve.app\n"
        "assert 'pyarrow' not in sys.modules, 'imported'\n"
        "import polars as pl, tempfile, os\n"
        "from behaviorlm.data.write import TableWriter\n"
        "with TableWriter(os.path.join(tempfile.mkdtemp(), 't.parquet')) as out:\n"
        "    out.write(pl.DataFrame({'a': [1]}))\n"
        "assert 'pyarrow' in sys.modules, 'not imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_write_whole_keeps_modes_and_links_and_leaves_no_part(tmp_path: Path) -> None:
    import os

    from behaviorlm.files import write_whole

    private = tmp_path / "config.json"
    private.write_text("old")
    os.chmod(private, 0o600)
    write_whole(private, "new")
    assert (private.read_text(), private.stat().st_mode & 0o777) == ("new", 0o600)
    link = tmp_path / "link.json"
    link.symlink_to(private)
    write_whole(link, "through")
    assert link.is_symlink()
    assert private.read_text() == "through"
    folder = tmp_path / "artifact.json"  # a folder where the file should go: no part left
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        write_whole(folder, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "artifact.json",
        "config.json",
        "link.json",
    ]


def test_a_parquet_file_keeps_metadata_and_other_formats_refuse_it(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    frame = pl.DataFrame({"a": [1, 2]})
    path = write_table(frame, tmp_path / "t.parquet", metadata={"k": "v"})
    assert (pq.read_schema(path).metadata or {})[b"k"] == b"v"
    assert pl.read_parquet(path).equals(frame)
    with pytest.raises(ValueError, match="only a Parquet file keeps metadata"):
        write_table(frame, tmp_path / "t.csv", metadata={"k": "v"})
    assert not (tmp_path / "t.csv").exists()
