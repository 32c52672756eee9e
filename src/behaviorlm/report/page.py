"""An evaluation report: one self-contained HTML file with the results table and charts.

What it shows, for the models evaluated on one data set:

* the metrics table (HR, NDCG, MRR, Recall, catalogue coverage and the mean popularity of the
  recommended items at @10 and @20), the best accuracy in each column in bold, and the notes
  of ``behaviorlm evaluate`` (seen-item masking, cut-offs past the catalogue);
* HR@K, NDCG@K and Coverage@K against the cut-off K, one line per model;
* NDCG and HR at 10 for the users grouped by the length of their history
  (``extra["by_history_length"]`` of :func:`behaviorlm.evaluate.evaluate`): where a model's
  lead comes from, and how it does for users with little history;
* for trained neural models, the training curves of their run folders (``metrics.jsonl``):
  validation NDCG@10 and training loss by epoch, the best epoch marked in the table.

The charts are inline SVG (:mod:`behaviorlm.report.svg`): no script, no network, nothing to
install to view it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

from behaviorlm.config import ConfigError
from behaviorlm.evaluate import (
    EvalResult,
    compare_to_first,
    cutoff_notes,
    error_notes,
    masking_notes,
    nearest_cutoff,
)
from behaviorlm.evaluate.artifacts import DATASET
from behaviorlm.evaluate.compare import format_difference
from behaviorlm.evaluate.results import seen_by
from behaviorlm.files import write_whole
from behaviorlm.report.svg import bar_chart, line_chart, nice_ticks
from behaviorlm.train.folder import METRICS_FILE, check_output_file

#: Columns of the table: metric and cut-off (where not evaluated: the cut-off nearest the
#: first and the next ones evaluated).
TABLE_METRICS: Final[tuple[str, ...]] = ("HR", "NDCG", "MRR", "Recall", "Coverage", "Popularity")
#: Columns of the table that describe the lists rather than score them: no value is in bold.
DESCRIPTIVE: Final[tuple[str, ...]] = ("Coverage", "Popularity")
TABLE_KS: Final[tuple[int, ...]] = (10, 20)
#: Metrics drawn against the cut-off.
CURVES: Final[tuple[str, ...]] = ("HR", "NDCG", "Coverage")
#: The validation metric of the training curves.
VALID_METRIC: Final = "NDCG@10"
#: The report's heading, before the data sets' names.
TITLE: Final = "behaviorlm evaluation"

STYLE: Final = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.muted { color: #666; }
"""


def training_log(run: str | Path) -> list[dict[str, Any]]:
    """The per-epoch lines of a training run folder (its ``metrics.jsonl``); ``[]`` where the
    folder has none (a baseline, or an artifact saved elsewhere); FileNotFoundError where the
    folder does not exist. A line that does not parse (a run stopped while writing it) is
    left out.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> training_log(folder)
    []
    >>> _ = (folder / "metrics.jsonl").write_text('{"epoch": 1, "loss": 5.0}\\n')
    >>> training_log(folder)
    [{'epoch': 1, 'loss': 5.0}]
    """
    if not Path(run).is_dir():
        raise FileNotFoundError(f"no run folder {run}")
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            epoch = json.loads(line)
        except json.JSONDecodeError:  # a run stopped while writing its last line
            continue
        if isinstance(epoch, dict):
            out.append(epoch)
    return out


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _table_ks(evaluated: Iterable[int]) -> list[int]:
    """The cut-offs a result shows in the table: the one nearest 10, and the next above it.

    Examples
    --------
    >>> _table_ks([5, 10, 20, 50]), _table_ks([5, 50]), _table_ks([1])
    ([10, 20], [5, 50], [1])
    """
    ks = sorted(set(evaluated))
    first = nearest_cutoff(ks, TABLE_KS[0])
    return [first, *[k for k in ks if k > first][: len(TABLE_KS) - 1]]


def _table(results: Sequence[EvalResult], logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    ks = sorted({k for r in results for k in _table_ks(r.ks)})  # each result's own
    columns = [(m, k) for m in TABLE_METRICS for k in ks]
    best = {}
    for m, k in columns:
        values = [r.metrics.get(m, {}).get(k) for r in results]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if len(finite) > 1 and m not in DESCRIPTIVE:  # a lone value is compared with none
            best[m, k] = max(finite)
    head = "".join(f"<th>{m}@{k}</th>" for m, k in columns)
    rows = []
    for r in results:
        cells = []
        for m, k in columns:
            value = r.metrics.get(m, {}).get(k)
            text = _number(value)
            if value is not None and value == best.get((m, k)):
                text = f"<b>{text}</b>"
            if (error := r.errors.get(m, {}).get(k)) is not None:
                text += f'<span class="muted"> ± {_number(error)}</span>'
            cells.append(f"<td>{text}</td>")
        log = logs.get(r.model) or []
        epochs = _epochs(log)
        rows.append(
            f"<tr><td>{escape(r.model)}</td>{''.join(cells)}<td>{epochs}</td>"
            f"<td>{r.n_users:,}</td></tr>"
        )
    return (
        f"<table><tr><th>model</th>{head}<th>epochs</th><th>users</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _paired(results: Sequence[EvalResult]) -> list[str]:
    """Each result against the first, paired by user (where the per-user values are there)."""
    comparison = compare_to_first(results)
    if comparison is None:
        return []
    out = [f'<p class="muted">not paired: {escape(why)}</p>' for why in comparison.left_out]
    if not comparison.rows:
        return out
    metrics = [d.metric for d in comparison.rows[0][1]]
    head = f"<th>model minus {escape(comparison.baseline)}</th>"
    head += "".join(f"<th>{escape(m)}</th>" for m in metrics)
    rows = "".join(
        f"<tr><td>{escape(label)}</td>"
        + "".join(f"<td>{escape(format_difference(d))}</td>" for d in diffs)
        + "</tr>"
        for label, diffs in comparison.rows
    )
    return [
        "<p>Each model minus the first, paired by user on the same users (± is the standard "
        "error of the mean difference, p a paired t-test's; it compares these trained "
        "models, not their configs: another seed can differ too):</p>",
        f"<table><tr>{head}</tr>{rows}</table>",
        *out,
    ]


def _epochs(log: Sequence[Mapping[str, Any]]) -> str:
    """Epochs trained, with the best validated one; a run without validation kept its last
    epoch's weights, which no validation called best."""
    if not log:
        return "-"
    best = log[-1].get("best_epoch")
    return f"{len(log)} (best {best})" if best is not None else f"{len(log)} (not validated)"


def _curves(results: Sequence[EvalResult], names: list[str]) -> list[str]:
    charts = []
    for metric in CURVES:
        series = {
            r.model: sorted(r.metrics[metric].items()) for r in results if metric in r.metrics
        }
        if not _drawable(v for points in series.values() for _, v in points):
            continue
        ks = sorted({k for points in series.values() for k, _ in points})
        log_x = min(ks) > 0 and len(ks) > 1
        charts.append(
            line_chart(
                {name: [(float(k), v) for k, v in points] for name, points in series.items()},
                title=f"{metric}@K",
                x_label="cut-off K" + (" (log scale)" if log_x else ""),
                y_label=f"{metric}@K",
                log_x=log_x,
                x_ticks=[float(k) for k in ks],
                names=names,
            )
        )
    return charts


def _by_history(results: Sequence[EvalResult], names: list[str]) -> list[str]:
    users: dict[str, set[int]] = {}  # group label -> its users in each result
    grouped = [r.extra["by_history_length"] for r in results if r.extra.get("by_history_length")]
    for groups_of_one in grouped:
        for g in groups_of_one:
            users.setdefault(str(g["events"]), set()).add(int(g["users"]))
    groups = sorted(users, key=lambda label: int(label.split("-")[0].rstrip("+")))
    # a group's users beside its label where every result has it, with as many users (one
    # set of users; a result leaves out the groups it has no user in)
    counted = all(len(n) == 1 for n in users.values()) and all(
        len(groups_of_one) == len(groups) for groups_of_one in grouped
    )
    labels = [f"{label} ({min(users[label]):,})" if counted else label for label in groups]
    x_label = "the user's own events before the target" + (" (users)" if counted else "")
    charts = []
    for metric in ("NDCG", "HR"):
        keys = {
            k
            for r in results
            for g in r.extra.get("by_history_length", [])
            for k in g
            if k.startswith(f"{metric}@")
        }
        # results at different cut-offs: a chart for each, of the results that have it
        for key in sorted(keys, key=lambda name: int(name.partition("@")[2])):
            series: dict[str, list[float | None]] = {}
            for r in results:
                values = {
                    str(g["events"]): g.get(key) for g in r.extra.get("by_history_length", [])
                }
                if any(v is not None for v in values.values()):
                    series[r.model] = [values.get(label) for label in groups]
            if not _drawable(v for values in series.values() for v in values):
                continue
            charts.append(
                bar_chart(
                    labels,
                    series,
                    title=f"{key} by history length",
                    x_label=x_label,
                    y_label=key,
                    names=names,
                )
            )
    return charts


def _is_number(value: Any) -> bool:
    """Whether a log's value reads as a number (NaN included: training writes it so)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _drawable(values: Iterable[float | None]) -> bool:
    """Whether any of a chart's ``values`` is finite (it has something to draw)."""
    return any(v is not None and math.isfinite(v) for v in values)


def _training(logs: Mapping[str, Sequence[Mapping[str, Any]]], names: list[str]) -> list[str]:
    # a value that is missing or no number (null in a hand-edited log) is no point
    valid = {
        name: [
            (float(e["epoch"]), float(e["valid"][VALID_METRIC]))
            for e in log
            if _is_number((e.get("valid") or {}).get(VALID_METRIC))
        ]
        for name, log in logs.items()
    }
    loss = {
        name: [(float(e["epoch"]), float(e["loss"])) for e in log if _is_number(e.get("loss"))]
        for name, log in logs.items()
    }
    charts = []
    for title, series in ((f"validation {VALID_METRIC}", valid), ("training loss", loss)):
        series = {name: points for name, points in series.items() if points}
        if _drawable(v for points in series.values() for _, v in points):
            epochs = [x for points in series.values() for x, _ in points]
            whole = [t for t in nice_ticks(min(epochs), max(epochs)) if t.is_integer()]
            charts.append(
                line_chart(
                    series,
                    title=title,
                    x_label="epoch",
                    y_label=title,
                    x_ticks=whole,  # no epoch 0.95 on a run of one epoch
                    names=names,
                    from_zero=title != "training loss",
                )
            )
    return charts


def _split_line(result: EvalResult) -> str:
    """What a result was evaluated on, e.g. ``test split: 164 users, 149 items, seen items
    excluded``."""
    n_items = result.extra.get("n_items")
    catalogue = f", {int(n_items):,} items" if n_items is not None else ""
    done = seen_by(result)
    seen = "seen items excluded" if result.exclude_seen else "seen items kept"
    if result.exclude_seen and done:
        seen = f"items the user did {done} on excluded"
    return f"{result.split or 'evaluation'} split: {result.n_users:,} users{catalogue}, {seen}"


def report_html(
    results: Sequence[EvalResult],
    *,
    logs: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    title: str | None = None,
) -> str:
    """The report of ``results`` (one data set and split, one result per model) as HTML.

    Parameters
    ----------
    results : sequence of EvalResult
        What :func:`behaviorlm.evaluate.evaluate` returned, one per model (``model`` labels
        the rows and the lines).
    logs : mapping, optional
        ``{model label: epoch lines}`` (:func:`training_log` of its run folder) for the
        training curves; labels of no result are left out.
    title : str, optional
        The page's heading (default: :func:`default_title`).

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10, 20), {"HR": {10: 0.5, 20: 1.0}}, True, 0.1)
    >>> page = report_html([r])
    >>> page.startswith("<!DOCTYPE html>") and "HR@K" in page and "<svg" in page
    True
    """
    if not results:
        raise ValueError("a report needs at least one evaluation result")
    title = title or default_title(results)
    names = [r.model for r in results]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"every result needs a label of its own; more than one result is labelled "
            f"{', '.join(twice)}"
        )
    logs = {name: log for name, log in (logs or {}).items() if name in names}
    splits = {r.model: _split_line(r) for r in results}
    # one line and notes without the models' names where every result has the same ones
    if len(set(splits.values())) == 1:
        about = next(iter(splits.values()))
    else:
        about = "; ".join(f"{model}: {line}" for model, line in splits.items())
    notes = error_notes(results) + masking_notes(results) + cutoff_notes(results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">{escape(about)}; full ranking over every item; written '
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by behaviorlm.</p>",
        "<h2>Metrics</h2>",
        _table(results, logs),
        *(f'<p class="muted">note: {escape(note)}</p>' for note in notes),
        *_paired(results),
    ]
    sections = [
        ("Metrics against the cut-off", _curves(results, names)),
        ("By history length", _by_history(results, names)),
        ("Training", _training(logs, names)),
    ]
    for heading, charts in sections:
        if charts:
            parts.append(f"<h2>{heading}</h2>")
            parts.append('<div class="charts">' + "".join(charts) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


#: File name endings of the HTML report.
REPORT_SUFFIXES: Final = (".html", ".htm")


def check_report_path(path: str | Path, name: str = "path") -> Path:
    """``path`` as a Path, or ConfigError where the report cannot go there: not named
    ``*.html``, or a place :func:`~behaviorlm.train.folder.check_output_file` refuses (a
    folder, a file of a run, data set or model).

    Examples
    --------
    >>> check_report_path("report.txt", "--report")
    Traceback (most recent call last):
    ...
    behaviorlm.config.ConfigError: --report report.txt: the report is HTML, name it *.html
    """
    if Path(path).suffix.lower() not in REPORT_SUFFIXES:
        raise ConfigError(f"{name} {path}: the report is HTML, name it *.html")
    return check_output_file(path, name)


def default_title(results: Sequence[EvalResult]) -> str:
    """The report's heading: the data sets evaluated on, where the results name them.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10,), {"NDCG": {10: 0.25}}, True, 0.1,
    ...                extra={"dataset": "shop"})
    >>> default_title([r])
    'behaviorlm evaluation: shop'
    """
    named = " and ".join(
        d for d in dict.fromkeys(str(r.extra.get(DATASET) or "") for r in results) if d
    )
    return f"{TITLE}: {named}" if named else TITLE


def write_report(
    results: Sequence[EvalResult],
    path: str | Path,
    *,
    logs: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    title: str | None = None,
) -> Path:
    """Write :func:`report_html` to ``path`` (creating its folder); returns the path.

    The file is written whole (a failed write leaves an earlier report as it was). Refuses
    (ConfigError) what ``evaluate --report`` refuses: a name not ending in ``.html``, a
    folder, a file of a run, data set or model (:func:`check_report_path`). ``title``
    defaults to the data sets the results were evaluated on (:func:`default_title`).

    Examples
    --------
    >>> import tempfile
    >>> r = EvalResult("pop", "test", 2, (10,), {"NDCG": {10: 0.25}}, True, 0.1)
    >>> write_report([r], Path(tempfile.mkdtemp()) / "report.html").suffix
    '.html'
    """
    path = check_report_path(path)
    page = report_html(results, logs=logs, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, page)
    return path
