"""Small helpers for the files behaviorlm writes."""

from __future__ import annotations

import os
from pathlib import Path


def as_new_file(path: str | Path) -> None:
    """Give ``path`` the permissions a newly created file gets: read-write for everyone, less
    the process's umask. Files written through a temporary file (which is private, 0600) or
    by a library that makes them private read like their neighbours then, for example for a
    server that runs as another user.

    Examples
    --------
    >>> import tempfile
    >>> handle, name = tempfile.mkstemp()
    >>> os.close(handle)
    >>> as_new_file(name)
    >>> umask = os.umask(0); _ = os.umask(umask)
    >>> os.stat(name).st_mode & 0o777 == 0o666 & ~umask
    True
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_whole(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it, renamed onto ``path``:
    a reader, or a run stopped while writing, sees the old file or the new one whole, never
    a part. An existing file keeps its permissions, and a link stays a link.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "config.json"
    >>> write_whole(path, "{}\\n")
    >>> path.read_text(), [p.name for p in path.parent.iterdir()]
    ('{}\\n', ['config.json'])
    """
    target = Path(path).resolve()  # through a link, as a plain write goes
    part = target.with_name(target.name + ".tmp")
    try:
        part.write_text(text, encoding="utf-8")
        if target.is_file():  # the file's own permissions, not the temporary file's
            os.chmod(part, target.stat().st_mode & 0o7777)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)  # a write or rename that failed leaves no part behind
