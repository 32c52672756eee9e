"""MovieLens download helper, served from local file:// URLs (no network)."""

from __future__ import annotations

import hashlib
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from behaviorlm.data import download
from behaviorlm.data.download import download_movielens
from behaviorlm.data.errors import DataError
from behaviorlm.data.io import read

RATINGS = "1::10::5::978300760\n2::10::3::978300761\n"


def make_zip(folder: Path, name: str, members: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in members.items():
            zf.writestr(member, text)
    return path


def test_download_extract_and_record_checksum(tmp_path: Path) -> None:
    source = tmp_path / "server"
    archive = make_zip(source, "ml-10m", {"ml-10M100K/ratings.dat": RATINGS})
    cache = tmp_path / "cache"
    folder = download_movielens("ml-10m", cache, base_url=source.as_uri())
    assert folder == cache / "ml-10m"
    assert (folder / "ratings.dat").read_text() == RATINGS
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (cache / "ml-10m.zip.sha256").read_text().split() == [digest, "ml-10m.zip"]
    assert read(folder).events["value"].to_list() == [5.0, 3.0]
    assert not any(p.name.startswith(".") for p in cache.iterdir())


def test_second_call_uses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "server"
    make_zip(source, "ml-1m", {"ml-1m/ratings.dat": RATINGS})
    cache = tmp_path / "cache"
    first = download_movielens("ml-1m", cache, base_url=source.as_uri())

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert download_movielens("ml-1m", cache, base_url=source.as_uri()) == first


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "server"
    make_zip(source, "ml-100k", {"ml-100k/u.data": "1\t2\t3\t4\n"})
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "env-cache"))
    folder = download_movielens("ml-100k", base_url=source.as_uri())
    assert folder == tmp_path / "env-cache" / "ml-100k"
    assert (folder / "u.data").is_file()


def test_expected_checksum_mismatch(tmp_path: Path) -> None:
    source = tmp_path / "server"
    archive = make_zip(source, "ml-1m", {"ml-1m/ratings.dat": RATINGS})
    cache = tmp_path / "c"
    with pytest.raises(DataError, match=r"SHA-256 of ml-1m\.zip .* the zip is removed"):
        download_movielens("ml-1m", cache, sha256="0" * 64, base_url=source.as_uri())
    assert sorted(p.name for p in cache.iterdir()) == []  # not unpacked later as if it passed
    # a cached data set is checked against the expected SHA-256 too
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    folder = download_movielens("ml-1m", cache, base_url=source.as_uri())
    assert download_movielens("ml-1m", cache, sha256=digest.upper()) == folder
    with pytest.raises(DataError, match=f"the cached ml-1m came from a zip of SHA-256 {digest}"):
        download_movielens("ml-1m", cache, sha256="0" * 64)
    (cache / "ml-1m.zip").unlink()  # the record of the unpacked zip stands in for it
    assert download_movielens("ml-1m", cache, sha256=digest) == folder
    (cache / "ml-1m.zip.sha256").unlink()
    with pytest.raises(DataError, match="no zip or record of one"):
        download_movielens("ml-1m", cache, sha256=digest)


def test_recorded_checksum_catches_a_changed_zip(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    make_zip(cache, "ml-1m", {"ml-1m/ratings.dat": RATINGS})
    (cache / "ml-1m.zip.sha256").write_text("f" * 64 + "  ml-1m.zip\n")
    with pytest.raises(DataError, match="expected fff"):
        download_movielens("ml-1m", cache, base_url="file:///nowhere")
    assert (cache / "ml-1m.zip").is_file()  # a zip saved by hand is the user's: kept


def test_corrupt_and_unsafe_zips(tmp_path: Path) -> None:
    source = tmp_path / "server"
    source.mkdir()
    (source / "ml-1m.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a valid zip"):
        download_movielens("ml-1m", tmp_path / "c1", base_url=source.as_uri())
    make_zip(source, "ml-20m", {"../evil/ratings.csv": "x"})
    with pytest.raises(DataError, match="unsafe path"):
        download_movielens("ml-20m", tmp_path / "c2", base_url=source.as_uri())
    assert not (tmp_path / "evil").exists()
    make_zip(source, "ml-25m", {"ml-25m/README.txt": "no data"})
    with pytest.raises(DataError, match="holds no MovieLens files"):
        download_movielens("ml-25m", tmp_path / "c3", base_url=source.as_uri())


def test_download_failure_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot download"):
        download_movielens("ml-1m", tmp_path / "c", base_url=(tmp_path / "empty").as_uri())
    assert not list((tmp_path / "c").glob("*.part"))
    with pytest.raises(DataError, match="unknown MovieLens data set"):
        download_movielens("ml-2m", tmp_path / "c")  # type: ignore[arg-type]


def test_cli_download_then_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from behaviorlm.cli import main

    src = tmp_path / "mirror"
    make_zip(src, "ml-1m", {"ml-1m/ratings.dat": RATINGS})
    cache = tmp_path / "cache"
    argv = ["download", "ml-1m", "--cache", str(cache), "--base-url", src.as_uri()]
    assert main(argv) == 0
    assert "behaviorlm prepare" in capsys.readouterr().out
    assert main(["prepare", str(cache / "ml-1m"), str(tmp_path / "ds")]) == 0
    assert (tmp_path / "ds" / "dataset.json").is_file()
