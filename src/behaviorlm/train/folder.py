"""The run folder: what a training run writes, and the earlier run it keeps until it is done.

Layout (``behaviorlm train --out FOLDER``; the default folder is ``runs/MODEL``)::

    config.json              the run's resolved config
    metrics.jsonl            one line per epoch (sequence models)
    summary.json             how the run ended
    checkpoint.safetensors   the last finished epoch (or the part of one the time budget
                             cut), read by ``--resume``
    checkpoint.json          (with its step, schedule and random states)
    artifact.json, model/, dataset/
                             the artifact (:mod:`behaviorlm.artifact`), written at the end
    previous/                the earlier run of the folder, while a fresh run replaces it

A fresh run into a folder that holds a model moves that run, whole, into ``previous/``
(:func:`set_aside`), once the new run has passed its checks. There it stays a loadable
artifact, with its logs and checkpoint, until the new run has saved its own artifact
(:func:`release`). So a run that fails, is interrupted or is killed loses no earlier model,
and the folder holds no model that passes for the unfinished run's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from behaviorlm.artifact import DATASET_DIR, MODEL_DIR, PREVIOUS_DIR
from behaviorlm.artifact import META_FILE as ARTIFACT_META
from behaviorlm.artifact import PARTS as ARTIFACT_PARTS
from behaviorlm.config import ConfigError
from behaviorlm.data.dataset import META_FILE as DATASET_META
from behaviorlm.data.dataset import TABLES as DATASET_TABLES
from behaviorlm.data.errors import DataError
from behaviorlm.data.readers.tabular import (
    FOLDER_TABLES,
    TABLE_EXTENSIONS,
    table_files,
    table_name,
)
from behaviorlm.models.base import CONFIG_FILE as MODEL_CONFIG
from behaviorlm.models.base import WEIGHTS_FILE as MODEL_WEIGHTS
from behaviorlm.train.checkpoint import META_FILE as CHECKPOINT_META
from behaviorlm.train.checkpoint import TENSORS_FILE as CHECKPOINT_TENSORS

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
#: The files of a run besides its artifact.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_TENSORS, CHECKPOINT_META)


def check_run_folder(path: Path) -> None:
    """Refuse a data folder as a run folder (a prepared data set, or raw tables that
    ``prepare`` reads), before any work: the artifact would be written among its files.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "events.csv").write_text("user_id,item_id\\n")
    >>> check_run_folder(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: ... holds data (events.csv), not a training run...
    """
    held = [p.name for p in table_files(path, "events")]
    if (path / DATASET_META).is_file():
        held.insert(0, DATASET_META)
    if held:
        raise DataError(
            f"{path} holds data ({', '.join(held)}), not a training run",
            how="train into a folder of its own (--out, out_dir=)",
        )


def check_unfinished(path: Path, *, ended_ok: bool = False) -> None:
    """Refuse, before any work, a fresh run into a folder whose run did not finish but left a
    checkpoint (interrupted, or cut by its machine): a fresh run would delete the epochs it
    trained, which ``--resume`` goes on from; so is one over a run that ended but was cut
    while saving its model (``--resume`` saves it). ``ended_ok``: a run that ended is not in
    the way (``fit_model``, which saves no model, leaves such runs); one that diverged
    before any validation kept a model never is.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_unfinished(folder)  # nothing there: nothing lost
    >>> _ = (folder / "checkpoint.json").write_text('{"epoch": 3}')
    >>> check_unfinished(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: ... holds an unfinished run (its checkpoint is of epoch 3)...
    """
    meta = path / CHECKPOINT_META
    if (path / ARTIFACT_META).is_file() or not meta.is_file():
        return
    try:
        held = json.loads(meta.read_text())
        epoch, stopped, best = held.get("epoch"), held.get("stopped"), held.get("best_epoch")
    except (OSError, ValueError, AttributeError):  # damaged: still a run that did not finish
        epoch = stopped = best = None
    if stopped is not None and (ended_ok or (stopped == "diverged" and best is None)):
        return  # no model to save, or none to save here: a fresh run is the way on
    which = f" (its checkpoint is of epoch {epoch})" if isinstance(epoch, int) else ""
    what = "an unfinished run" if stopped is None else f"a run that ended ({stopped}) unsaved"
    go_on = "go on with it" if stopped is None else "save its model without training more"
    raise DataError(
        f"{path} holds {what}{which}, which a fresh run would delete",
        how=f"pass --resume (resume=True) to {go_on}, or delete its "
        f"{CHECKPOINT_META} and {CHECKPOINT_TENSORS} to start again, or train into "
        "another folder",
    )


def discard_unfinished(path: Path) -> None:
    """Remove the checkpoint of a run in ``path`` that did not finish (and left no model),
    for a caller whose runs are its own to redo, as the demo's are.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "checkpoint.json").write_text('{"epoch": 3}')
    >>> discard_unfinished(folder)
    >>> check_unfinished(folder)  # nothing left in the way
    """
    if not (path / ARTIFACT_META).is_file():
        for name in (CHECKPOINT_META, CHECKPOINT_TENSORS):
            (path / name).unlink(missing_ok=True)


def owner_of(path: Path, *, raw_data: bool = True) -> str | None:
    """The folder of the project that a file written at ``path`` would break, or None: a
    run's (its artifact, config, metrics, checkpoint), a data set's (its tables and
    ``dataset.json``), a model's (its config and weights), or, with ``raw_data``, raw
    data's (in a folder with an ``events`` table, a table that a folder read takes: events,
    items, users or follows, whether or not it exists yet).

    Examples
    --------
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = (run / "artifact.json").write_text("{}")
    >>> owner_of(run / "config.json") == f"the run in {run}", owner_of(run / "eval.json")
    (True, None)
    """
    real = path.resolve()  # a link to a run's file is that file
    folder, name = real.parent, real.name
    tables = tuple(f"{t}.parquet" for t in DATASET_TABLES)
    # (marks, files): a folder is the owner's where it holds a mark, every file of it, other
    # than the file written (an evaluation saved as results/model.json makes no model)
    owned: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]] = {
        "run": (
            (
                (ARTIFACT_META,),
                (CHECKPOINT_META,),
                (CHECKPOINT_TENSORS,),
                (CONFIG_FILE, METRICS_FILE),
                (CONFIG_FILE, SUMMARY_FILE),
                (f"{MODEL_DIR}/{MODEL_CONFIG}", f"{DATASET_DIR}/{DATASET_META}"),
            ),
            (*ARTIFACT_PARTS, *RUN_FILES),
        ),
        "data set": (((DATASET_META,), (tables[0],)), (DATASET_META, *tables)),
        "model": (((MODEL_CONFIG,), (MODEL_WEIGHTS,)), (MODEL_CONFIG, MODEL_WEIGHTS)),
    }
    for owner, (marks, files) in owned.items():
        if name in files and any(
            name not in mark and all((folder / m).is_file() for m in mark) for mark in marks
        ):
            return f"the {owner} in {folder}"
    if name == CONFIG_FILE and (folder / METRICS_FILE).is_file():  # cut before a checkpoint
        return f"the run in {folder}"
    # a table that prepare reads in a folder with events: the events table, a second one, or
    # a side table (new or not: a folder read would take it)
    stem, suffix = table_name(real)
    if (
        raw_data
        and stem.lower() in FOLDER_TABLES
        and suffix in TABLE_EXTENSIONS
        and table_files(folder, "events")
    ):
        return f"the data in {folder}"
    return None


def check_output_file(path: str | Path, name: str, *, raw_data: bool = True) -> Path:
    """``path`` as a Path, or ConfigError where a file cannot or must not be written there: a
    folder, a path under a file, or a file :func:`owner_of` names (``name`` is the option or
    argument named in the message; ``raw_data`` as there).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_output_file(folder / "eval.json", "--json").name
    'eval.json'
    >>> check_output_file(folder, "--json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    behaviorlm.config.ConfigError: --json ... is a folder; name a file to write
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{name} {path} is a folder; name a file to write")
    if path.exists() and not path.is_file():  # /dev/stdout, a pipe: written whole, renamed
        raise ConfigError(f"{name} {path} is not a regular file; name a file to write")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ConfigError(f"{name} {path}: {above} is a file, not a folder")
    owner = owner_of(path, raw_data=raw_data)
    if owner is not None:
        raise ConfigError(f"{name} {path} is a file of {owner}; name another file to write")
    return path


def set_aside(path: Path) -> Path | None:
    """Clear ``path`` for a fresh run: an earlier run that left a model moves into
    ``previous/`` (all of it or, where a move fails, none of it); the files of one that left
    none are removed.

    Parameters
    ----------
    path : Path
        The run folder (it exists).

    Returns
    -------
    Path or None
        ``path / "previous"`` where it holds an earlier model (set aside now, or by a fresh
        run before this one that did not finish), else None.

    Raises
    ------
    DataError
        Where the folder holds a model and a ``previous/`` that is no run set aside (it
        holds no ``artifact.json``), before anything is moved.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run = Path(tmp)
    ...     _ = (run / "artifact.json").write_text("{}")
    ...     _ = (run / "metrics.jsonl").write_text("")
    ...     kept = set_aside(run)
    ...     sorted(p.name for p in kept.iterdir()), (run / "artifact.json").exists()
    (['artifact.json', 'metrics.jsonl'], False)
    """
    kept = path / PREVIOUS_DIR
    if (path / ARTIFACT_META).is_file():  # a finished run: the model to keep
        if kept.exists() and not (kept / ARTIFACT_META).is_file():
            raise DataError(
                f"{kept} is not a run that behaviorlm set aside (no {ARTIFACT_META}), and a "
                f"fresh run keeps the model of {path} there",
                how=f"move {kept} elsewhere, or train into another folder",
            )
        if kept.exists():  # a model set aside before the one the folder holds now
            shutil.rmtree(kept)
        kept.mkdir()
        moved: list[str] = []
        try:
            for name in (*ARTIFACT_PARTS, *RUN_FILES):
                if (path / name).exists():
                    (path / name).rename(kept / name)
                    moved.append(name)
        except OSError:  # put back what moved: the folder stays as it was
            for name in reversed(moved):
                (kept / name).rename(path / name)
            kept.rmdir()
            raise
    else:  # a run that did not finish: its files go, an earlier model set aside stays
        for name in RUN_FILES:
            (path / name).unlink(missing_ok=True)
    return kept if (kept / ARTIFACT_META).is_file() else None


def release(path: Path) -> None:
    """The run in ``path`` has saved its artifact: remove the earlier run set aside.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run = Path(tmp)
    ...     (run / "previous").mkdir()
    ...     _ = (run / "previous" / "artifact.json").write_text("{}")
    ...     release(run)
    ...     (run / "previous").exists()
    False
    """
    kept = path / PREVIOUS_DIR
    if (kept / ARTIFACT_META).is_file():
        shutil.rmtree(kept, ignore_errors=True)  # the new model is saved: no reason to fail
