"""Download and unpack a MovieLens data set from GroupLens into a local cache.

The zip is fetched once with :mod:`urllib`, checked, and extracted into
``<cache>/<name>/`` (the folder :func:`behaviorlm.data.io.read` takes). The cache is
``cache_dir`` when given, else ``$BEHAVIORLM_CACHE``, else ``~/.cache/behaviorlm``.

Integrity: GroupLens publishes no checksum list we can vouch for here, so no checksums are
built in. Every download is checked with :meth:`zipfile.ZipFile.testzip` (the CRC of every
member) and its SHA-256 is written next to the zip as ``<name>.zip.sha256``; a later run that
finds the zip again verifies it against that record. Pass ``sha256=`` to pin a known value.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Final, Literal, get_args

from behaviorlm.data.errors import DataError
from behaviorlm.data.readers.movielens import movielens_layout

MovieLensName = Literal["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small"]
#: Names :func:`download_movielens` accepts.
MOVIELENS_NAMES: Final[tuple[str, ...]] = get_args(MovieLensName)
GROUPLENS_URL: Final[str] = "https://files.grouplens.org/datasets/movielens"
CACHE_ENV: Final[str] = "BEHAVIORLM_CACHE"
_CHUNK: Final[int] = 1 << 20


def default_cache_dir() -> Path:
    """``$BEHAVIORLM_CACHE`` if set, else ``~/.cache/behaviorlm``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "behaviorlm").expanduser()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path) -> None:
    """Stream ``url`` into ``target`` (via a ``.part`` file, renamed when complete)."""
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except (urllib.error.URLError, OSError) as error:
        part.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise DataError(
            f"cannot download {url}: {reason}",
            where=str(target.parent),
            how=f"check the network, or download the zip by hand and save it as {target}",
        ) from error
    part.replace(target)


def _check_zip(archive: Path, expected: str | None, *, fetched: bool = False) -> str:
    """Verify the zip (CRC of every member, and the expected or recorded SHA-256); a zip
    ``fetched`` by this call that fails the SHA-256 is removed (one saved by hand is kept)."""
    record = archive.with_name(archive.name + ".sha256")
    digest = file_sha256(archive)
    if expected is None and record.is_file():
        expected = record.read_text().split()[0]
    if expected is not None and digest != expected.lower():
        if fetched:  # never unpacked later as if it had passed
            archive.unlink()
        raise DataError(
            f"SHA-256 of {archive.name} is {digest}, expected {expected}"
            + ("; the zip is removed" if fetched else ""),
            where=str(archive),
            how="check the expected SHA-256, and download again"
            if fetched
            else "delete the zip (and its .sha256 file) and download again",
        )
    try:
        with zipfile.ZipFile(archive) as zf:
            broken = zf.testzip()
    except zipfile.BadZipFile as error:
        raise DataError(
            f"{archive.name} is not a valid zip file",
            where=str(archive),
            how="delete it and download again",
        ) from error
    if broken is not None:
        raise DataError(
            f"{archive.name} is corrupt (member {broken} fails its CRC check)",
            where=str(archive),
            how="delete it and download again",
        )
    record.write_text(f"{digest}  {archive.name}\n")
    return digest


def _check_cached(archive: Path, expected: str) -> None:
    """Check an unpacked data set against ``expected``: the SHA-256 of its zip, or the one
    recorded when it was unpacked where the zip is gone."""
    record = archive.with_name(archive.name + ".sha256")
    if archive.is_file():
        digest: str | None = file_sha256(archive)
    else:
        digest = record.read_text().split()[0] if record.is_file() else None
    if digest is None or digest != expected.lower():
        found = "no zip or record of one" if digest is None else f"a zip of SHA-256 {digest}"
        raise DataError(
            f"the cached {archive.stem} came from {found}, expected {expected}",
            where=str(archive.parent / archive.stem),
            how="delete the folder and its zip to download again",
        )


def _extract(archive: Path, staging: Path) -> None:
    """Extract every member, refusing paths that would leave ``staging``."""
    root = staging.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise DataError(
                    f"unsafe path {member!r} in {archive.name}",
                    where=str(archive),
                    how="use the zip published by GroupLens",
                )
        zf.extractall(staging)


def download_movielens(
    name: MovieLensName,
    cache_dir: Path | None = None,
    *,
    sha256: str | None = None,
    base_url: str = GROUPLENS_URL,
) -> Path:
    """Download (once) and extract a MovieLens data set; return the folder to read.

    Parameters
    ----------
    name : str
        One of ``ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-latest-small``.
    cache_dir : Path, optional
        Where zips and data live; defaults to :func:`default_cache_dir`.
    sha256 : str, optional
        Expected SHA-256 of the zip, checked against a cached copy too (a zip fetched now
        that fails it is removed); without it the zip is checked with ``testzip`` and its
        SHA-256 recorded in ``<name>.zip.sha256``.
    base_url : str
        Where ``<name>.zip`` is fetched from (``file://`` URLs work too).

    Returns
    -------
    Path
        ``<cache>/<name>``, holding the MovieLens files.

    Examples
    --------
    >>> import io, tempfile, zipfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(src / "ml-1m.zip", "w") as zf:
    ...     zf.writestr("ml-1m/ratings.dat", "1::1::5::978300760\\n")
    >>> folder = download_movielens("ml-1m", src / "cache", base_url=src.as_uri())
    >>> sorted(p.name for p in folder.iterdir())
    ['ratings.dat']
    """
    if name not in MOVIELENS_NAMES:
        raise DataError(
            f"unknown MovieLens data set {name!r}", how=f"use one of {', '.join(MOVIELENS_NAMES)}"
        )
    cache = (cache_dir or default_cache_dir()).expanduser()
    folder = cache / name
    if folder.is_dir() and movielens_layout(folder) is not None:
        if sha256 is not None:  # the cached copy must be the one asked for
            _check_cached(cache / f"{name}.zip", sha256)
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"{name}.zip"
    fetched = not archive.is_file()
    if fetched:
        _fetch(f"{base_url.rstrip('/')}/{name}.zip", archive)
    _check_zip(archive, sha256, fetched=fetched)
    staging = cache / f".{name}.extract"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _extract(archive, staging)
        found = [
            d for d in (staging, *sorted(staging.rglob("*"))) if d.is_dir() and movielens_layout(d)
        ]
        if not found:
            raise DataError(
                f"{archive.name} holds no MovieLens files (u.data, ratings.dat or ratings.csv)",
                where=str(archive),
                how="check the name and base_url",
            )
        shutil.rmtree(folder, ignore_errors=True)
        found[0].replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
