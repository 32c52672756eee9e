"""The ``behaviorlm`` command line: simulate, prepare, train, evaluate, recommend, explain,
influence, influencers, download, serve, export-events, demo.

This is the only module that reads argv, the environment and output paths. Every command
is a thin layer over a plain Python function; errors in the input print one line (what,
where, how to fix) and exit with status 2, without a traceback unless ``--debug``.

``behaviorlm train`` also runs under ``torchrun`` (data-parallel training, see
:mod:`behaviorlm.train.distributed`): each worker joins the process group named by the
launcher's environment, only rank 0 prints and writes, and the workers exit through
:func:`behaviorlm.train.distributed.finish`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from rich.table import Table

from behaviorlm.allocator import retain_freed_memory
from behaviorlm.artifact import Artifact, kept_model, package_version
from behaviorlm.config import ConfigError, IgnoredSettingWarning, load_toml
from behaviorlm.data.dataset import Dataset, check_prepare_paths
from behaviorlm.data.download import CACHE_ENV, GROUPLENS_URL, MOVIELENS_NAMES, download_movielens
from behaviorlm.data.errors import DataError
from behaviorlm.data.io import read
from behaviorlm.data.preprocess import PrepareConfig, preprocess
from behaviorlm.data.synthetic import simulate, write_simulation
from behaviorlm.data.synthetic.output import check_simulation_folder
from behaviorlm.data.write import TableWriter, table_format
from behaviorlm.demo import run_demo
from behaviorlm.evaluate import (
    SHOWN_METRICS,
    EvalResult,
    compare_to_first,
    cutoff_notes,
    cutoff_table,
    error_notes,
    evaluate_artifact,
    masking_notes,
    paired_table,
)
from behaviorlm.explain import (
    explain_user,
    influence_user,
    labelled_explanation,
    labelled_influence,
    labelled_ranking,
    rank_influencers,
)
from behaviorlm.explain.artifacts import unused_setting
from behaviorlm.explain.shapley import SAMPLES
from behaviorlm.explain.view import print_explanation
from behaviorlm.files import write_whole
from behaviorlm.models import MODELS
from behaviorlm.progress import Console, bar, console, figure, print_table, step
from behaviorlm.recommend import recommend
from behaviorlm.report import training_log, write_report
from behaviorlm.report.page import check_report_path
from behaviorlm.schema import Sequences
from behaviorlm.train import ignored_settings, named_model, resolve_run_config, train
from behaviorlm.train.distributed import World, current_world, finish, start
from behaviorlm.train.folder import check_output_file
from behaviorlm.train.run import stored_config

EXIT_BAD_INPUT = 2
#: Exit status after Ctrl-C, as a shell reports a process ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
#: Exit status when the reader of standard output went away (``| head``), as a shell
#: reports a process that SIGPIPE ended: 128 + 13.
EXIT_BROKEN_PIPE = 141

T = TypeVar("T")


def _parse_map(text: str | None) -> dict[str, str] | None:
    """``user_id=uid,item_id=iid`` -> {"user_id": "uid", "item_id": "iid"}."""
    if not text:
        return None
    mapping = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--map entry {part!r} must look like schema_name=file_column")
        if key.strip() in mapping:
            raise ConfigError(f"--map names {key.strip()} twice: map each schema column once")
        mapping[key.strip()] = value.strip()
    return mapping


def _parse_ks(text: str) -> tuple[int, ...]:
    """``"5,10,20"`` -> (5, 10, 20), sorted without repeats; anything else is a ConfigError."""
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise ConfigError(f"--ks {text!r} must be positive integers separated by commas") from None
    if not ks or min(ks) < 1:
        raise ConfigError(f"--ks {text!r} must be positive integers separated by commas")
    return tuple(sorted(set(ks)))


#: A ``--section.key=value`` override (no option of the commands has a dot in its name).
_OVERRIDE = re.compile(r"--[A-Za-z_][\w-]*\.[\w.-]+=")


def _split_overrides(extra: Sequence[str]) -> list[str]:
    """Unknown arguments must be ``--section.key=value`` overrides."""
    bad = [a for a in extra if not _OVERRIDE.match(a)]
    if bad:
        raise ConfigError(
            f"unrecognised argument(s): {' '.join(bad)} (overrides look like --train.lr=1e-3)"
        )
    return [a[2:] for a in extra]


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` (its usage is the one to show for its arguments)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]  # type: ignore[no-any-return]
    return parser


def _unrecognised(parser: argparse.ArgumentParser, command: str, extra: Sequence[str]) -> str:
    """The error for arguments ``command`` does not take, with the nearest option of its own
    for the first misspelt one (``--josn``: ``--json``)."""
    options = [o for a in _command_parser(parser, command)._actions for o in a.option_strings]
    flags = [a.partition("=")[0] for a in extra if a.startswith("--")]
    near = difflib.get_close_matches(flags[0], options, n=1, cutoff=0.7) if flags else []
    hint = f" (did you mean {near[0]}?)" if near else ""
    return f"unrecognised arguments: {' '.join(extra)}{hint}"


def cmd_simulate(args: argparse.Namespace) -> None:
    if args.users < 1:
        raise ConfigError(f"--users must be at least 1, got {args.users}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {args.seed}")
    if args.events_per_user is not None and not args.events_per_user > 0:
        raise ConfigError(f"--events-per-user must be more than 0, got {args.events_per_user}")
    check_simulation_folder(args.out, args.format)  # before the work of simulating
    with step(f"simulating {args.users:,} users"):
        raw = simulate(args.users, seed=args.seed, events_per_user=args.events_per_user)
    with step(f"writing {args.format} files"):
        out = write_simulation(raw, args.out, format=args.format)
    console.print(f"wrote {raw.events.height:,} events of {args.users:,} users to {out}")


def cmd_prepare(args: argparse.Namespace) -> None:
    check_prepare_paths(args.input, args.out_dir)
    config = PrepareConfig(  # its settings checked before the reading
        dedupe=not args.keep_duplicates,
        collapse_repeats=args.collapse_repeats,
        min_user_events=args.min_user_events,
        min_item_events=args.min_item_events,
        max_iterations=args.max_iterations,
    )
    with step(f"reading {args.input}"):
        raw = read(
            args.input,
            format=args.format,
            mapping=_parse_map(args.map),
            on_error=args.on_error,
            strict_actions=args.strict_actions,
            sep=args.sep,
            columns=None if args.columns is None else [c.strip() for c in args.columns.split(",")],
            name=args.name,
        )
    with step("preprocessing"):
        ds = preprocess(raw, config)
    with step(f"writing {args.out_dir}"):
        ds.save(args.out_dir)
    for line in _quality_lines(ds.meta.get("quality", [])):
        console.print(f"  {line}")
    console.print(
        f"prepared {ds.n_events:,} events, {ds.n_users:,} users, {ds.n_items:,} items"
        f" -> {args.out_dir}"
    )


def _quality_lines(quality: list[dict[str, object]]) -> list[str]:
    lines = []
    for s in quality:
        dropped = s.get("dropped") or {}
        assert isinstance(dropped, dict)
        why = ", ".join(f"{k}: {v:,}" for k, v in dropped.items())
        lines.append(
            f"{s['step']}: {s['rows_in']:,} -> {s['rows_out']:,} rows"
            + (f" (dropped {why})" if why else "")
        )
    return lines


def _torchrun_launch() -> dict[str, int] | None:
    """This worker's place in a multi-process ``torchrun`` launch (from its environment)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    return {
        "rank": int(os.environ["RANK"]),
        "size": size,
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "local_size": int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
    }


def _on_main(world: World, read: Callable[[], T]) -> T:
    """``read()`` on rank 0, its value, or its ConfigError, handed to every rank."""

    def attempt() -> tuple[T | None, str | None]:
        try:
            return read(), None
        except ConfigError as error:
            return None, str(error)

    value, error = world.from_main(attempt)
    if error is not None:
        raise ConfigError(error)
    return cast(T, value)


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> None:
    # resolve the config first: a mistake in it is reported before any data is loaded
    data = load_toml(args.config) if args.config else None
    out = Path(args.out) if args.out else None
    if out is None and args.resume:  # the default folder, named before the config is checked
        named = named_model(args.model, data, overrides)
        out = Path("runs") / named if named is not None else None
    # a run resumed starts from its own config, not the shipped defaults: it names its model
    # and may predate them (resolved here, as train() would, because under torchrun only
    # rank 0 hands train() the run folder and every rank must train with the same config:
    # rank 0 reads it for all, as it reads the checkpoint; other nodes may not see the folder)
    world = current_world()
    stored = _on_main(world, lambda: stored_config(out)) if args.resume and out else None
    if stored is None:
        run = resolve_run_config(args.model, data, overrides)
        out = out or Path("runs") / run.model
    else:
        run = resolve_run_config(args.model, data, overrides, base=stored)
    assert out is not None
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the artifact is a folder")
    main_rank = world.is_main  # under torchrun only rank 0 prints and writes

    def shown(description: str) -> AbstractContextManager[None]:
        return step(description) if main_rank else nullcontext()

    for note in ignored_settings(run, resume=args.resume) if main_rank else []:
        print(f"behaviorlm: note: {note}", file=sys.stderr)
    with shown(f"loading {args.dataset}"):
        ds = Dataset.load(args.dataset)
    try:
        with shown(f"training {run.model}"), warnings.catch_warnings():
            warnings.simplefilter("ignore", IgnoredSettingWarning)  # the notes above
            artifact = train(
                ds,
                config=run.to_dict(),
                out_dir=out if main_rank else None,
                resume=args.resume,
                progress=main_rank,
            )
    except BaseException:  # the run did not finish: say where the folder's earlier model is
        kept = kept_model(out)
        if main_rank and kept is not None:
            print(f"behaviorlm: the earlier model of {out} is kept in {kept}", file=sys.stderr)
        raise
    if not main_rank:
        return
    fit = artifact.run["fit"]
    where = f" on {fit['device']}" if fit.get("device", "cpu") != "cpu" else ""
    best = (
        f", best epoch {fit['best_epoch']} (valid NDCG@10 {fit['best_valid']['NDCG@10']:.4f})"
        if fit.get("best_valid")
        else ""
    )
    took = f"in {artifact.run['fit_seconds']:.1f}s"
    whole = fit.get("run_seconds")
    if fit.get("resumed") and whole is not None:
        took += f" ({whole:.1f}s with the sessions before)"
    theirs = artifact.run["split_info"].get("followee_events", {}).get("train", 0)
    shares = f" ({theirs:,} of them followees' events in the timelines)" if theirs else ""
    planned = artifact.run["config"]["train"]["epochs"]
    ended = {  # a run that ended before its epochs says why
        "time_budget": f"; stopped by train.time_budget_s in epoch {fit['epochs']} of {planned}",
        "early_stopping": f"; stopped early in epoch {fit['epochs']} of {planned} (train.patience)",
        "diverged": f"; stopped in epoch {fit['epochs']} of {planned}: the loss diverged (NaN or "
        "infinite), the best epoch's model is kept; a lower train.lr trains further",
    }.get(str(fit.get("stopped")), "")
    console.print(
        f"trained {artifact.model.name} on {artifact.run['train_events']:,} events{shares} "
        f"{took}{where}{best}{ended} -> {out}",
        soft_wrap=True,
    )


def saved_results(path: str | Path) -> list[EvalResult]:
    """The results of an ``evaluate --json`` file; a DataError where it holds none.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "r.json"
    >>> r = EvalResult("pop", "test", 2, (10,), {"HR": {10: 0.5}}, True, 0.1)
    >>> _ = p.write_text(json.dumps([r.to_dict()]))
    >>> saved_results(p) == [r]
    True
    """
    try:
        data = json.loads(Path(path).read_text())
        items = [data] if isinstance(data, dict) else data  # one result (to_json) or a list
        results = [EvalResult.from_dict(item) for item in items]
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
        raise DataError(
            f"not the results of `behaviorlm evaluate --json` ({type(error).__name__}: {error})",
            where=str(path),
            how="pass an artifact folder, or a file written by evaluate --json",
        ) from error
    if not results:
        raise DataError("no results in the file", where=str(path), how="pass another file")
    return results


def distinct_labels(results: Sequence[EvalResult]) -> list[EvalResult]:
    """``results`` with every label told apart: a repeated one gets ``#2``, ``#3`` (a saved
    result named like a run evaluated now, say).

    Examples
    --------
    >>> r = EvalResult("sasrec", "test", 2, (10,), {}, True, 0.1)
    >>> two = replace(r, model="sasrec#2")
    >>> [x.model for x in distinct_labels([r, two, r, r])]
    ['sasrec', 'sasrec#2', 'sasrec#3', 'sasrec#4']
    """
    labels = numbered([r.model for r in results])
    return [
        r if r.model == label else replace(r, model=label)
        for r, label in zip(results, labels, strict=True)
    ]


def numbered(labels: Sequence[str]) -> list[str]:
    """``labels`` with a repeated one numbered ``#2``, ``#3`` on its later places, past any
    number that another label already is.

    Examples
    --------
    >>> numbered(["m", "m", "m#2"])
    ['m', 'm#3', 'm#2']
    """
    out = list(labels)
    taken = set(out)
    seen: dict[str, int] = {}
    for i, label in enumerate(out):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] == 1:
            continue
        while f"{label}#{seen[label]}" in taken:  # a folder named "markov#2" given too
            seen[label] += 1
        out[i] = f"{label}#{seen[label]}"
        taken.add(out[i])
    return out


def run_labels(paths: Sequence[str]) -> list[str]:
    """A label for each run folder: its name, with as many parent folders as it takes to
    tell runs of one name apart (a folder given twice: ``#2`` on the second).

    Examples
    --------
    >>> run_labels(["runs/a/markov", "runs/b/markov", "runs/sasrec", "runs/sasrec"])
    ['a/markov', 'b/markov', 'sasrec', 'sasrec#2']
    >>> run_labels(["m", "m", "m#2"])
    ['m', 'm#3', 'm#2']
    """
    parts = [Path(os.path.abspath(p)).parts for p in paths]  # as given: links not followed
    depth = [1] * len(paths)
    while True:
        labels = [Path(*q[-d:]).as_posix() for q, d in zip(parts, depth, strict=True)]
        clash = {i for i, label in enumerate(labels) if labels.count(label) > 1}
        grow = {i for i in clash if parts[i] != parts[labels.index(labels[i])]}
        if not grow:
            break
        for i in grow | {labels.index(labels[i]) for i in grow}:
            depth[i] = min(depth[i] + 1, len(parts[i]))
    return numbered(labels)  # the same folder twice


def _output_file(value: str | None, flag: str) -> Path | None:
    """The path of an output file option, checked before any work (``check_output_file``:
    ``--json runs/x/artifact.json`` lost the model)."""
    return check_output_file(value, flag) if value else None


def _report_path(value: str | None) -> Path | None:
    """The path of ``--report``, checked before any work: an HTML file."""
    return check_report_path(value, "--report") if value else None


def cmd_evaluate(args: argparse.Namespace) -> None:

    ks = _parse_ks(args.ks)
    report = _report_path(args.report)
    to_stdout = args.json == "-"  # the JSON on standard output, the rest on standard error
    con = Console(stderr=True, highlight=False, markup=False) if to_stdout else console
    if not to_stdout:
        _output_file(args.json, "--json")
    if args.per_user and not args.json:
        raise ConfigError("--per-user keeps the per-user values in the --json file: add --json")
    if args.action and args.include_seen:
        raise ConfigError("--action says which seen items to leave out: drop --include-seen")
    saved_files = [p for p in args.artifacts if Path(p).suffix.lower() == ".json"]
    if (
        args.json
        and not to_stdout
        and any(Path(args.json).resolve() == Path(p).resolve() for p in saved_files)
    ):
        raise ConfigError(f"--json {args.json} is one of the saved results read: name another file")
    if args.json and not to_stdout and report and Path(args.json).resolve() == report.resolve():
        raise ConfigError(f"--json and --report name one file, {args.json}: name two")
    results: list[EvalResult] = []
    runs: list[str | None] = []  # each result's run folder (None: a saved result)
    # label rows by artifact folder: two artifacts of one model differ by config
    for path, label in zip(args.artifacts, run_labels(args.artifacts), strict=True):
        if path in saved_files and not Path(path).is_dir():
            saved = saved_results(path)  # an earlier evaluate --json: taken as it was
            results += saved
            runs += [None] * len(saved)
            continue
        with step(f"evaluating {path}"):
            artifact = Artifact.load(path)
            result = evaluate_artifact(
                artifact,
                on=args.on,
                exclude_seen=not args.include_seen,
                seen_actions=args.action,
                ks=ks,
                name=label,
            )
            results.append(result)
            runs.append(path)
    results = distinct_labels(results)
    logs = {
        r.model: training_log(run)
        for r, run in zip(results, runs, strict=True)
        if run is not None and report is not None
    }
    splits = sorted({r.split for r in results})
    if len(splits) > 1:
        con.print(
            f"note: the results are of different held-out events ({', '.join(splits)}): "
            "compare each with those of its own",
            soft_wrap=True,
        )
    # the accuracy metrics, then catalogue coverage and the mean popularity of what is shown
    metrics = (*SHOWN_METRICS, "Coverage", "Popularity")
    # the cut-offs asked for, and those of the saved results, which are shown as they were
    shown = tuple(sorted(set(ks).union(*(r.ks for r in results))))
    table = cutoff_table(results, metrics, ks=shown, errors=True)
    con.print(table, soft_wrap=True)
    for note in [*error_notes(results), *masking_notes(results), *cutoff_notes(results)]:
        con.print(f"note: {note}", soft_wrap=True)
    comparison = compare_to_first(results)
    if comparison is not None:
        con.print(
            "\nPaired by user (each model minus the first on the same users; ± is the "
            "standard error of the mean difference, p a paired t-test's; it compares these "
            "trained models, not their configs: another seed can differ too):\n"
            + paired_table(comparison),
            soft_wrap=True,
        )
    if args.json:
        written = [r.to_dict(per_user=args.per_user) for r in results]
        # per-user values: compact (a value a line would take 16 bytes each)
        text = json.dumps(written, indent=None if args.per_user else 2) + "\n"
        if to_stdout:
            sys.stdout.write(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)  # as --report does
            write_whole(args.json, text)
            con.print(f"wrote {args.json}", soft_wrap=True)
    if report is not None:
        path = write_report(results, report, logs=logs)
        con.print(f"wrote {path}", soft_wrap=True)


#: Users ranked per step of ``behaviorlm recommend --out`` (one progress step each).
USERS_PER_STEP = 4096


def cmd_recommend(args: argparse.Namespace) -> None:
    if args.all_users and not args.out:
        raise ConfigError(
            "--all-users writes a file: add --out FILE (.parquet, .csv, .tsv or .jsonl)"
        )
    if args.out and args.json:
        raise ConfigError("--json prints the lists and --out writes them: choose one")
    if args.action and args.include_seen:
        raise ConfigError("--action says which seen items to leave out: drop --include-seen")
    if args.out:
        table_format(args.out)  # before any work: a file type the writer writes
        _output_file(args.out, "--out")
    artifact = Artifact.load(args.artifact)
    if args.all_users:  # every user: row u - 1 of the timelines is user u
        users, histories = artifact.dataset.users["user_id"].to_list(), artifact.timelines()
    else:
        users, histories = args.user, artifact.histories(args.user)
    filters: dict[str, Any] = {
        "exclude_seen": not args.include_seen,
        "seen_actions": [artifact.dataset.acted_code(a) for a in args.action]
        if args.action
        else None,
        "allowed_items": artifact.category_mask(args.category) if args.category else None,
        "exclude_items": artifact.item_ids(args.exclude) if args.exclude else None,
    }
    active = [
        name
        for name, on in (
            ("seen items", not args.include_seen),
            ("--category", args.category),
            ("--exclude", args.exclude),
        )
        if on
    ]
    why = f"the filters ({', '.join(active)}) leave no more" if active else "no more items"
    if args.k > artifact.dataset.n_items:  # short whatever the filters
        why = f"the catalogue has {artifact.dataset.n_items:,} items" + (
            f", and the filters ({', '.join(active)}) leave out some" if active else ""
        )
    if args.out:
        _write_recommendations(artifact, users, histories, args.k, filters, Path(args.out), why)
        return
    ranked = recommend(artifact.model, histories, args.k, **filters)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for user, items, scores in zip(args.user, ranked.items, ranked.scores, strict=True):
        keep = items > 0
        rows = [
            {"rank": rank, **row, "score": float(score)}  # the columns of --out's rows
            for rank, (row, score) in enumerate(
                zip(artifact.item_table(items[keep]), scores[keep], strict=True), start=1
            )
        ]
        out.append((user, rows))
    for user, rows in out:  # a short list is not an error, but it says why
        if len(rows) < args.k:
            print(
                f"behaviorlm: note: {len(rows)} of {args.k} items for user {user}: {why}",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps([{"user_id": u, "recommendations": r} for u, r in out], indent=2))
        return
    for user, rows in out:
        _print_recommendations(console, user, rows)


def _write_recommendations(
    artifact: Artifact,
    users: list[str],
    histories: Sequences,
    k: int,
    filters: dict[str, Any],
    path: Path,
    why: str,
) -> None:
    """Rank ``users`` (one history row each) a step at a time, each step's lists written to
    ``path`` as it is ranked (the file appears whole at the end); lists shorter than ``k``
    are counted in a note that says ``why``."""
    items = artifact.dataset.items["item_id"]  # one column for every step
    listed = short = 0  # users with at least one item, and with fewer than k
    with bar("recommending", len(users), unit="users") as advance, TableWriter(path) as out:
        for lo in range(0, len(users), USERS_PER_STEP):
            rows = np.arange(lo, min(lo + USERS_PER_STEP, len(users)), dtype=np.int64)
            ranked = recommend(artifact.model, histories.select(rows), k, **filters)
            part = ranked.table(users[lo : lo + len(rows)], items)
            out.write(part)
            lengths = (ranked.items > 0).sum(axis=1)
            listed += int((lengths > 0).sum())
            short += int((lengths < k).sum())
            advance(len(rows))
    empty = len(users) - listed
    none = f" ({empty:,} with no item left after the filters)" if empty else ""
    console.print(
        f"wrote {out.rows:,} recommendations for {len(users):,} users{none} to {path}",
        soft_wrap=True,
    )
    if short:
        print(
            f"behaviorlm: note: {short:,} of {len(users):,} lists have fewer than {k} items "
            f"({empty:,} none): {why}",
            file=sys.stderr,
        )


def _print_recommendations(con: Console, user: str, rows: list[dict[str, Any]]) -> None:

    table = Table(title=f"top {len(rows)} for user {user}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("title")
    table.add_column("category")
    table.add_column("score", justify="right")
    scale = max((abs(row["score"]) for row in rows), default=0.0)
    for row in rows:
        table.add_row(
            str(row["rank"]),
            str(row.get("item_id", "")),
            str(row.get("title") or ""),
            str(row.get("category") or ""),
            figure(row["score"], scale),
        )
    print_table(con, table)


def cmd_explain(args: argparse.Namespace) -> None:
    unused = unused_setting(args.method, steps=args.steps, samples=args.samples)
    if unused is not None:  # it would be ignored without a word
        raise ConfigError(f"--{unused[0]} sets --method {unused[1]}, not {args.method}: drop it")
    artifact = Artifact.load(args.artifact)
    explanation = explain_user(
        artifact,
        args.user,
        args.item,
        action=args.action,
        method=args.method,
        steps=args.steps,
        samples=args.samples,
        without_target_events=args.without_target_events,
    )
    data = labelled_explanation(artifact, explanation)
    if args.json:
        print(json.dumps(data, indent=2))
        return
    print_explanation(console, args.user, data)
    if args.without_target_events and not data["set_aside"] and data["target"]["kind"] == "item":
        console.print(
            f"(nothing set aside: user {args.user} has no events of their own on item "
            f"{data['target'].get('item_id')})",
            soft_wrap=True,
        )


def cmd_influence(args: argparse.Namespace) -> None:
    artifact = Artifact.load(args.artifact)
    result = influence_user(
        artifact, args.user, args.item, args.action, k=args.k, items=args.items, reach=args.reach
    )
    data = labelled_influence(artifact, result)
    if args.json:
        print(json.dumps(data, indent=2))
        return
    event = data["event"]
    con = console
    con.print(
        f"user {args.user} {event['action_name']}s item "
        f"{' '.join(filter(None, [event.get('item_id'), event.get('title')]))}: "
        f"KL(after || before) = {data['kl']:.4f} nats",
        soft_wrap=True,
    )
    for c in data["items"]:
        scale = max(abs(c["before"]), abs(c["after"]))  # small probabilities: significant digits
        change = figure(c["change"], abs(c["change"]), sign=True)  # a small change too
        con.print(
            f"  p(next = {c.get('item_id')}) {figure(c['before'], scale)} -> "
            f"{figure(c['after'], scale)} ({change})",
            soft_wrap=True,
        )
    top = min(args.k, len(data["before"]))  # a list never holds more than can be ranked
    for label, key in (("entering the top", "entering"), ("leaving the top", "leaving")):
        names = ", ".join(f"{r.get('item_id')} {r.get('title') or ''}".strip() for r in data[key])
        con.print(f"  {label} {top}: {names or '-'}", soft_wrap=True)
    reach = data["reach"]
    if reach is None:
        return
    followers = sorted(reach["followers"], key=lambda r: -r["uplift"])
    if not followers:
        graph = artifact.dataset.follows.height > 0
        why = f"user {args.user} has no followers" if graph else "this data set has no follow graph"
        con.print(f"social reach: {why}")
        return
    exposure, relative = reach["exposure"], reach["exposure_relative"]
    weight = (
        f"exposure {figure(exposure, exposure)}, {_exposure_meaning(relative)}"
        if exposure is not None
        else _exposure_meaning(None)
    )
    con.print(
        f"social reach {figure(reach['reach'], reach['reach'])} over {len(followers)} "
        f"follower{'s' if len(followers) != 1 else ''}; {weight}",
        soft_wrap=True,
    )
    table = Table()
    table.add_column("follower")
    seen = "" if reach["followee_event"] else " if seen"  # a followee's act: seen or not
    table.add_column(f"uplift of p(next = item){seen}", justify="right")
    shown = followers[: args.k]
    scale = max(abs(row["uplift"]) for row in shown)  # small uplifts: significant digits
    for row in shown:
        table.add_row(str(row["user_id"]), figure(row["uplift"], scale, sign=True))
    print_table(con, table)
    if len(followers) > args.k:
        con.print(f"(the {args.k} largest uplifts of {len(followers)}; -k shows more)")


def _exposure_meaning(relative: bool | None) -> str:
    """What a reach's exposure is, in words (None: there is none)."""
    if relative is None:
        return "no exposure: every follower counted (the log does not show who sees what is shared)"
    if relative:
        return "how often a follower sees the user's act, over the average act's"
    return "the chance that a follower sees the user's act"


def cmd_influencers(args: argparse.Namespace) -> None:
    artifact = Artifact.load(args.artifact)
    named = len(set(args.user)) if args.user else 0
    k = args.k if args.k is not None else (named or 10)  # every user named, unless -k says
    ranking = rank_influencers(artifact, args.item, k=k, users=args.user, action=args.action)
    action = artifact.dataset.action_name(args.action)  # as ranked: LIKE is like
    data = labelled_ranking(artifact, ranking)
    rows = data["users"]
    if args.json:
        print(json.dumps({"item_id": args.item, "action": action, **data}, indent=2))
        return
    meaning = None if ranking.exposure is None else ranking.exposure_relative
    console.print(
        f"who would move the most followers to item {args.item} with a {action} "
        f"(exposure: {_exposure_meaning(meaning)})",
        soft_wrap=True,
    )
    table = Table()
    table.add_column("user")
    for name in ("predicted reach", "followers", "exposure"):
        table.add_column(name, justify="right")
    # small values in significant digits, each column by its largest
    reach_scale = max((abs(row["reach"]) for row in rows), default=0.0)
    seen_scale = max((row["exposure"] or 0.0 for row in rows), default=0.0)
    for row in rows:
        seen = row["exposure"]
        table.add_row(
            str(row["user_id"]),
            figure(row["reach"], reach_scale),
            str(row["followers"]),
            "unknown" if seen is None else figure(seen, seen_scale),
        )
    print_table(console, table)
    if named > len(rows) == k:
        console.print(f"(the {k} largest reaches of the {named} users named; -k shows more)")


def cmd_download(args: argparse.Namespace) -> None:
    cache = Path(args.cache) if args.cache else None
    with step(f"downloading {args.name}"):
        folder = download_movielens(args.name, cache, sha256=args.sha256, base_url=args.base_url)
    console.print(
        f"{args.name} is in {folder}; next: behaviorlm prepare {folder} data/{args.name}",
    )


def cmd_serve(args: argparse.Namespace) -> None:
    # imported here: the web stack is only needed by the server
    from behaviorlm.serve import run_server
    from behaviorlm.serve.settings import Limits

    if not 0 < args.port < 65536:  # uvicorn would bind the port modulo 65536 without a word
        raise ConfigError(f"--port must be 1 to 65535, got {args.port}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "").strip()  # a file's newline too
        if not api_key:
            raise ConfigError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set, or empty"
            )
    run_server(
        args.artifact,
        args.store,
        host=args.host,
        port=args.port,
        api_key=api_key,
        limits=Limits() if args.model_batch is None else Limits(model_batch=args.model_batch),
        access_log=args.access_log,
        threads=args.threads,
        traced=not args.no_trace,
        retain_memory=args.retain_freed_memory,
    )


def cmd_export_events(args: argparse.Namespace) -> None:
    from behaviorlm.serve import export_events
    from behaviorlm.serve.store import has_export_columns, is_export

    if Path(args.out).suffix.lower() not in (".parquet", ".pq"):
        raise ConfigError(f"export-events writes Parquet: name the file *.parquet, not {args.out}")
    # an earlier export is replaced, other raw data is not
    own = is_export(args.out)
    if not own and has_export_columns(args.out):
        raise ConfigError(
            f"OUT {args.out} has an export's columns but not its mark: an export written before "
            "exports were marked, or a table merged from one; remove it to write the export "
            "there, or name another file"
        )
    check_output_file(args.out, "OUT", raw_data=not own)
    n = export_events(args.store, args.out)
    console.print(f"wrote {n:,} events to {args.out}")


def cmd_demo(args: argparse.Namespace) -> None:

    run_demo(
        users=args.users,
        seed=args.seed,
        out=Path(args.out) if args.out else None,
        report=_report_path(args.report),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="behaviorlm",
        description="Predict what users do next from behaviour logs, recommend, and explain why.",
        allow_abbrev=False,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"behaviorlm {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "simulate", help="write the built-in shop simulator's data", allow_abbrev=False
    )
    p.add_argument("out", help="output folder")
    p.add_argument("--users", type=int, default=1000, help="simulated users (default 1,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--events-per-user", type=float, help="mean events per user (default 40)")
    p.add_argument(
        "--format",
        choices=["parquet", "csv", "jsonl"],
        default="parquet",
        help="file format of the tables (default parquet)",
    )

    p = sub.add_parser(
        "prepare", help="read a log, preprocess, write a Dataset", allow_abbrev=False
    )
    p.add_argument(
        "input", help="file or folder (CSV/TSV/Parquet/JSONL, MovieLens, RecBole, sequences)"
    )
    p.add_argument("out_dir", help="folder to write the Dataset to")
    p.add_argument(
        "--format",
        default="auto",
        help="csv, tsv, parquet, jsonl, folder, movielens, recbole or sequences "
        "(auto: from the path)",
    )
    p.add_argument("--map", help="column mapping, e.g. user_id=uid,item_id=iid,timestamp=ts")
    p.add_argument("--sep", help="field separator of a text file")
    p.add_argument(
        "--columns",
        help="names of the fields of a CSV/TSV file without a header row, in order, "
        "e.g. user_id,item_id,value,timestamp",
    )
    p.add_argument(
        "--on-error",
        choices=["raise", "drop"],
        default="raise",
        help="a bad row stops the run (raise) or is dropped and counted (drop)",
    )
    p.add_argument(
        "--strict-actions", action="store_true", help="reject actions that are not built in"
    )
    p.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="do not drop exact duplicate events (repeated follow edges are dropped all the same)",
    )
    p.add_argument("--collapse-repeats", action="store_true", help="collapse immediate repeats")
    p.add_argument("--min-user-events", type=int, default=1, help="k-core minimum per user")
    p.add_argument("--min-item-events", type=int, default=1, help="k-core minimum per item")
    p.add_argument(
        "--max-iterations",
        type=int,
        help="most k-core rounds; not converging within them is an error (default: none)",
    )
    p.add_argument(
        "--name", help="the data set's name, as reports show it (default: the input's name)"
    )

    p = sub.add_parser(
        "train",
        help="fit a model on a prepared Dataset",
        description="Fit a model on a prepared Dataset. The model's shipped config applies, "
        "then --config, then any --section.key=value override (e.g. --train.lr=1e-3 "
        "--model.dim=128 '--split.followee_actions=[]').",
        allow_abbrev=False,
    )
    p.add_argument("dataset", help="folder written by `behaviorlm prepare`")
    p.add_argument(
        "--model", choices=sorted(MODELS), help="model name (or [run] model in --config)"
    )
    p.add_argument(
        "--config",
        help="experiment TOML file, or a run's config.json (its keys over the model's "
        "shipped config)",
    )
    p.add_argument("--out", help="artifact and run folder (default runs/MODEL)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the training checkpoint in --out (same config and data)",
    )

    p = sub.add_parser("evaluate", help="full-ranking metrics of artifacts", allow_abbrev=False)
    p.add_argument(
        "artifacts",
        nargs="+",
        help="artifact folders written by `behaviorlm train`, or .json files of an earlier "
        "`evaluate --json` (their results as saved; paired with the others where saved with "
        "--per-user)",
    )
    p.add_argument(
        "--on", choices=["test", "valid"], default="test", help="which held-out event (test)"
    )
    p.add_argument(
        "--include-seen", action="store_true", help="do not filter the user's seen items"
    )
    p.add_argument(
        "--action",
        action="append",
        metavar="ACTION",
        help="count as seen only the items the user did ACTION on (repeatable), as recommend "
        "--action does: measures a model trained to predict purchases on the lists it serves",
    )
    p.add_argument(
        "--ks",
        default="1,5,10,20,50,100,200",
        help="comma-separated cut-offs (default 1,5,10,20,50,100,200)",
    )
    p.add_argument(
        "--json",
        help="also write the results as JSON to this file (-: to standard output, with the "
        "table on standard error)",
    )
    p.add_argument(
        "--per-user",
        action="store_true",
        help="keep each user's values in the --json file, so a later evaluate pairs them",
    )
    p.add_argument(
        "--report",
        help="also write an HTML report with charts to this file (metrics against the "
        "cut-off, by history length, training curves)",
    )

    p = sub.add_parser("recommend", help="top-K items for users", allow_abbrev=False)
    p.add_argument("artifact", help="folder written by `behaviorlm train`")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", action="append", help="external user id (repeatable)")
    who.add_argument(
        "--all-users", action="store_true", help="every user of the data set (needs --out)"
    )
    p.add_argument("-k", type=int, default=10, help="items per user (10)")
    p.add_argument(
        "--include-seen", action="store_true", help="also recommend items the user has seen"
    )
    p.add_argument(
        "--category",
        action="append",
        help="only items of this category (repeatable; 'a|b': of a or b)",
    )
    p.add_argument(
        "--action",
        action="append",
        metavar="ACTION",
        help="count as seen only the items the user did ACTION on (repeatable; e.g. purchase, "
        "for a model trained to predict purchases: it still recommends what was only viewed)",
    )
    p.add_argument("--exclude", action="append", help="never recommend this item id (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--out",
        help="write the lists to this file instead (.parquet, .csv, .tsv or .jsonl; one row per "
        "recommendation: user_id, rank, item_id, score)",
    )

    p = sub.add_parser(
        "explain", help="why a neural model recommends an item to a user", allow_abbrev=False
    )
    p.add_argument("artifact", help="folder written by `behaviorlm train`")
    p.add_argument("--user", required=True, help="external user id")
    p.add_argument("--item", help="external item id (default: the top recommendation)")
    p.add_argument("--action", help="explain the score of this next action instead of an item")
    p.add_argument(
        "--method",
        choices=["occlusion", "ig", "shapley", "attention"],
        default="occlusion",
        help="occlusion (exact leave-one-out, the default), ig (integrated gradients), shapley "
        "(Shapley values of the events), attention (a diagnostic read-out, not an explanation)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="integrated gradients: points along the path to start with, doubled until the "
        "attributions sum to the score minus the baseline within 1%% (default 32; up to 256, "
        "or four times the start if more, 4,096 at most)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help=f"shapley: orders of the events sampled (default {SAMPLES})",
    )
    p.add_argument(
        "--without-target-events",
        action="store_true",
        help="with --item: set aside the user's own events on that item first, to explain why "
        "the user comes to it at all",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = sub.add_parser(
        "influence",
        help="what a user's hypothetical action on an item would change",
        allow_abbrev=False,
    )
    p.add_argument("artifact", help="folder written by `behaviorlm train`")
    p.add_argument("--user", required=True, help="external user id")
    p.add_argument("--item", required=True, help="external item id")
    p.add_argument(
        "--action",
        default="share",
        help="action name (default share; share and like also reach the user's followers); "
        "one the model's training data never had is refused: on data without shares, use view",
    )
    p.add_argument(
        "--items",
        nargs="+",
        default=[],
        metavar="ITEM",
        help="further external item ids whose probability change to report (every word "
        "after --items is an item: give the artifact before it)",
    )
    p.add_argument(
        "-k",
        type=int,
        default=10,
        help="length of the top-K lists compared, and followers listed (default 10)",
    )
    reach = p.add_mutually_exclusive_group()
    reach.add_argument(
        "--reach",
        dest="reach",
        action="store_const",
        const=True,
        default=None,
        help="also the social reach over the user's followers (the default for share and like)",
    )
    reach.add_argument(
        "--no-reach",
        dest="reach",
        action="store_const",
        const=False,
        help="the user's own next behaviour only, also for a share or a like",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser(
        "influencers",
        help="users ranked by the predicted reach of their sharing an item",
        allow_abbrev=False,
    )
    p.add_argument("artifact", help="folder written by `behaviorlm train`")
    p.add_argument("--item", required=True, help="external item id")
    p.add_argument(
        "--action",
        default="share",
        help="the act: share (the default) or like; its exposure rate is learned from the log",
    )
    p.add_argument(
        "-k",
        type=int,
        help="how many users to list (default 10; with --user, every user named)",
    )
    p.add_argument(
        "--user",
        action="append",
        help="rank only these users (external ids; repeat the option for more)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser(
        "download", help="fetch a public MovieLens archive into a cache", allow_abbrev=False
    )
    p.add_argument("name", choices=MOVIELENS_NAMES)
    p.add_argument("--cache", help=f"cache folder (default ${CACHE_ENV} or ~/.cache/behaviorlm)")
    p.add_argument("--sha256", help="expected SHA-256 of the zip")
    p.add_argument("--base-url", default=GROUPLENS_URL, help="where NAME.zip is fetched from")

    p = sub.add_parser(
        "serve", help="HTTP service: event ingestion and fresh recommendations", allow_abbrev=False
    )
    p.add_argument("artifact", help="folder written by `behaviorlm train`")
    p.add_argument(
        "--store",
        default="sqlite:///events.db",
        help="event store, sqlite:///path/to/events.db (default sqlite:///events.db, in the "
        "working folder)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key required by POST /v1/events and "
        "POST /v1/influence (without one the server listens on localhost only)",
    )
    p.add_argument(
        "--model-batch",
        type=int,
        metavar="N",
        help="most concurrent recommendation requests ranked in one pass of the model "
        "(default: Limits.model_batch, 64)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for the model (default 1; requests are batched; 1 measured "
        "fastest on 2 cores)",
    )
    p.add_argument(
        "--no-trace",
        action="store_true",
        help="run the model eagerly instead of through TorchScript traces (the same scores; "
        "traces take less CPU per request)",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (off by default: /metrics counts them, and the log line "
        "costs CPU on every request)",
    )
    p.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="keep freed memory in the process for reuse (behaviorlm.allocator): faster "
        "explanations of long windows, no gain for recommendations",
    )

    p = sub.add_parser(
        "export-events",
        help="write every event the service ingested to Parquet (input for a retrain)",
        allow_abbrev=False,
    )
    p.add_argument("store", help="event store, sqlite:///path/to/events.db")
    p.add_argument("out", help="output Parquet file")

    p = sub.add_parser("demo", help="end-to-end demo on the built-in simulator", allow_abbrev=False)
    p.add_argument(
        "--users", type=int, default=10_000, help="simulated users (default 10,000; at least 20)"
    )
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    p.add_argument(
        "--out",
        help="keep the demo's files (and its report, as report.html) in this folder "
        "(default: a temporary folder)",
    )
    p.add_argument("--report", help="write the HTML evaluation report with charts to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``behaviorlm`` console script; returns the exit status.

    A ``train`` worker of a multi-process ``torchrun`` launch does not return: it leaves
    through :func:`behaviorlm.train.distributed.finish` with the status.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted before or after the command
    given = [a for a in argv if a != "--debug"]
    # overrides are taken out first: argparse takes an unknown option whose value holds a
    # space ('--split.target_actions=[purchase, cart]') for a positional argument
    overrides = [a for a in given if _OVERRIDE.match(a)]
    args, extra = parser.parse_known_args([a for a in given if not _OVERRIDE.match(a)])
    if args.command == "evaluate":  # artifacts after an option: argparse leaves them over
        late = [a for a in extra if not a.startswith("-")]
        args.artifacts += late
        extra = [a for a in extra if a not in late]
    extra = overrides + extra
    args.debug = debug
    if args.command != "serve":  # fewer page faults in repeated tensor work; not the server's
        retain_freed_memory()  # hot path, whose requests fault no pages (behaviorlm.allocator)
    launch = _torchrun_launch() if args.command == "train" else None
    if launch is None:
        return _run(parser, args, extra)
    start(**launch)
    try:
        status = _run(parser, args, extra)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the traceback, then the same robust exit as a finished run
        traceback.print_exc()
        status = 1
    finish(status)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> int:
    """Run the parsed command; errors in the input give one line and status 2."""
    try:
        if args.command == "train":
            bad = [a for a in extra if not _OVERRIDE.match(a)]
            if bad:  # overrides look like --train.lr=1e-3
                _command_parser(parser, "train").error(_unrecognised(parser, "train", bad))
            cmd_train(args, _split_overrides(extra))
        else:
            if extra:
                _command_parser(parser, args.command).error(
                    _unrecognised(parser, args.command, extra)
                )
            {
                "simulate": cmd_simulate,
                "prepare": cmd_prepare,
                "evaluate": cmd_evaluate,
                "recommend": cmd_recommend,
                "explain": cmd_explain,
                "influence": cmd_influence,
                "influencers": cmd_influencers,
                "download": cmd_download,
                "demo": cmd_demo,
                "serve": cmd_serve,
                "export-events": cmd_export_events,
            }[args.command](args)
    except BrokenPipeError:  # the output's reader is gone (| head): stop without a word
        if args.debug:
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush cannot fail again
        return EXIT_BROKEN_PIPE
    except (DataError, ConfigError, OSError, ValueError) as exc:
        if args.debug:  # the traceback too, and the same status as without it
            traceback.print_exc()
        if isinstance(exc, DataError):
            message = exc.line()
        elif isinstance(exc, OSError) and exc.strerror:
            message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        else:
            message = str(exc)
        print(f"behaviorlm: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise  # a bug: its traceback
        if args.debug:
            traceback.print_exc()
        print(
            "behaviorlm: error: out of memory"
            + (f" ({str(exc).splitlines()[0][:200]})" if str(exc) else "")
            + "; fix: ask for less (a smaller model.max_len, model.dim or train.batch_size, "
            "fewer users at a time)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if args.debug:
            raise
        again = ""
        if args.command == "train":  # the run folder holds the last checkpoint
            again = "; the same command with --resume continues from the last finished epoch"

        if current_world().is_main:  # under torchrun every rank gets the Ctrl-C
            print(f"behaviorlm: interrupted{again}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
