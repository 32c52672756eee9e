"""Evaluation reports: the history-length groups of an evaluation, the SVG charts and the
HTML page, from the Python API and from ``behaviorlm evaluate --report``."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import behaviorlm as blm
from behaviorlm.cli import main
from behaviorlm.evaluate import EvalResult
from behaviorlm.evaluate.runner import own_events
from behaviorlm.report import report_html, training_log
from behaviorlm.report.svg import bar_chart, line_chart, nice_ticks
from behaviorlm.schema import FOLLOWEE, EvalSet, Sequences

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared simulator data set with a markov and a one-epoch sasrec run."""
    root = tmp_path_factory.mktemp("report")
    dataset = blm.preprocess(blm.simulate(200, seed=5))
    dataset.save(root / "ds")
    for model, overrides in (("markov", []), ("sasrec", ["train.epochs=2", "model.max_len=20"])):
        blm.train(dataset, model, overrides=overrides, out_dir=root / model)
    return root


def test_history_length_groups_add_up_to_the_whole(runs: Path) -> None:
    result = blm.evaluate_artifact(blm.Artifact.load(runs / "markov"), ks=(5, 10, 20))
    groups = result.extra["by_history_length"]
    assert [g["events"] for g in groups] == sorted(
        (g["events"] for g in groups), key=lambda label: int(label.rstrip("+").split("-")[0])
    )
    assert sum(g["users"] for g in groups) == result.n_users
    for metric in ("HR", "NDCG"):
        weighted = sum(g[f"{metric}@10"] * g["users"] for g in groups) / result.n_users
        assert weighted == pytest.approx(result.metrics[metric][10], abs=1e-5)
    # the nearest cut-off where 10 is not evaluated; JSON keeps the groups
    other = blm.evaluate_artifact(blm.Artifact.load(runs / "markov"), ks=(5, 20))
    assert "NDCG@5" in other.extra["by_history_length"][0]
    back = EvalResult.from_dict(json.loads(result.to_json()))
    assert back.extra["by_history_length"] == groups


def test_history_length_counts_the_users_own_events_only() -> None:
    histories = Sequences.from_lists([[1, 2, 3, 4], [2]], n_items=4)
    followees = np.array([0, 7, 7, 0, 0])  # two events of row 0 are a followee's shares
    histories = dataclasses.replace(histories, extra={FOLLOWEE: followees})
    evalset = EvalSet(histories, np.array([0, 1, 2]), np.array([1, 2]), np.array([0, 1]))
    assert own_events(evalset).tolist() == [2, 1]


def test_nice_ticks_cover_the_range_in_round_steps() -> None:
    for lo, hi in [(0.0, 0.23), (0.0, 1.0), (3.5, 1234.0), (-2.0, 0.7), (0.0001, 0.0004)]:
        ticks = nice_ticks(lo, hi)
        assert ticks[0] <= lo
        assert ticks[-1] >= hi
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0])
        mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
        assert round(mantissa, 6) in (1.0, 2.0, 5.0)
        assert 3 <= len(ticks) <= 12
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0.0, math.inf)


def test_line_chart_places_points_on_a_log_axis() -> None:
    svg = line_chart(
        {"a": [(1, 0.1), (10, 0.2), (100, 0.4)], "b<c": [(1, 0.05), (100, math.nan)]},
        title="HR@K",
        x_label="K",
        y_label="HR",
        log_x=True,
    )
    root = ET.fromstring(svg)  # well-formed, names escaped
    assert len(root.findall(f"{SVG}polyline")) == 2
    assert "b&lt;c" in svg
    dots = root.findall(f"{SVG}circle")
    assert len(dots) == 4  # the NaN point is left out
    xs = [float(d.get("cx", 0)) for d in dots[:3]]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.2)  # equal steps per decade
    ys = [float(d.get("cy", 0)) for d in dots[:3]]
    assert ys[0] > ys[1] > ys[2]  # larger values higher up
    assert dots[0].get("fill") != dots[3].get("fill")
    with pytest.raises(ValueError, match="positive"):
        line_chart({"a": [(0, 1.0)]}, title="t", x_label="x", y_label="y", log_x=True)
    with pytest.raises(ValueError, match="no finite"):
        line_chart({"a": [(1, math.nan)]}, title="t", x_label="x", y_label="y")


def test_bar_chart_heights_follow_the_values() -> None:
    svg = bar_chart(
        ["0-4", "5-9"], {"a": [0.2, 0.1], "b": [0.4, None]}, title="t", x_label="x", y_label="y"
    )
    rects = ET.fromstring(svg).findall(f"{SVG}rect")
    bars = [r for r in rects if r.find(f"{SVG}title") is not None]  # a0, b0, a1 (b1 is None)
    heights = [float(r.get("height", 0)) for r in bars]
    assert len(heights) == 3
    assert heights[1] == pytest.approx(2 * heights[0], rel=1e-2)
    assert heights[0] == pytest.approx(2 * heights[2], rel=1e-2)


def test_report_page(runs: Path) -> None:
    results = [
        dataclasses.replace(blm.evaluate_artifact(blm.Artifact.load(runs / m)), model=m)
        for m in ("markov", "sasrec")
    ]
    logs = {"markov": training_log(runs / "markov"), "sasrec": training_log(runs / "sasrec")}
    assert logs["markov"] == []
    assert [e["epoch"] for e in logs["sasrec"]] == [1, 2]
    page = report_html(results, logs=logs, title="a <report>")
    assert "<h1>a &lt;report&gt;</h1>" in page
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 7  # HR, NDCG, Coverage @K; NDCG, HR by history length; training
    for svg in svgs:
        ET.fromstring(svg)
    best = max(results, key=lambda r: r.metrics["NDCG"][10])
    assert f"<b>{best.metrics['NDCG'][10]:.4f}</b>" in page
    for name in ("Coverage", "Popularity"):  # described, not ranked: never in bold
        assert f"<th>{name}@10</th>" in page
        for r in results:
            assert f"<td>{r.metrics[name][10]:.4f}</td>" in page
    assert f"2 (best {logs['sasrec'][-1]['best_epoch']})" in page  # sasrec's epochs
    unvalidated = [{**line, "valid": None, "best_epoch": None} for line in logs["sasrec"]]
    assert "2 (not validated)" in report_html(results, logs={**logs, "sasrec": unvalidated})
    one = report_html(results, logs={"sasrec": logs["sasrec"][:1]})
    training = one[one.index("training loss") :]
    ticks = re.findall(r'text-anchor="middle">([^<]*)</text>', training)
    assert "1" in ticks
    assert not [t for t in ticks if "." in t]  # whole epochs only
    assert page.count("seen-item masking") == (1 if results[0].extra["targets_in_history"] else 0)
    without = report_html(results)
    assert "Training" not in without
    assert len(re.findall(r"<svg", without)) == 5
    with pytest.raises(ValueError, match="at least one"):
        report_html([])


def test_evaluate_command_writes_a_report(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out" / "report.html"
    argv = ["evaluate", str(runs / "markov"), str(runs / "sasrec"), "--report", str(report)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {report}" in printed
    assert "Paired by user" in printed
    assert "| model minus markov | HR@10 | NDCG@10 |" in printed
    assert re.search(r"\| sasrec \| [+-]\d\.\d{4} ± \d\.\d{4}, p", printed)
    page = report.read_text()
    assert "paired by user" in page
    assert "behaviorlm evaluation: " in page
    assert "markov" in page
    assert "validation NDCG@10" in page
    assert main([*argv[:-1], str(tmp_path / "report.txt")]) == 2
    assert "*.html" in capsys.readouterr().err


def test_write_report_refuses_what_the_command_refuses(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from behaviorlm.config import ConfigError

    result = blm.evaluate_artifact(blm.Artifact.load(runs / "markov"))
    meta = (runs / "markov" / "artifact.json").read_bytes()
    for path, words in (
        (runs / "markov" / "artifact.json", "the report is HTML"),
        (tmp_path / "report.txt", "the report is HTML"),
        (tmp_path, "the report is HTML"),
        (tmp_path / "a.html", "is a folder"),
        (tmp_path / "file" / "r.html", "is a file, not a folder"),
    ):
        if words == "is a folder":
            path.mkdir()
        if "not a folder" in words:
            (tmp_path / "file").write_text("")
        with pytest.raises(ConfigError, match=words):
            blm.write_report([result], path)
    assert (runs / "markov" / "artifact.json").read_bytes() == meta
    # the Python report is titled by its data set, as the command's
    page = blm.write_report([result], tmp_path / "r.html").read_text()
    assert f"<h1>behaviorlm evaluation: {result.extra['dataset']}</h1>" in page
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    # the command checks the report's folder before evaluating, and one file for two outputs
    argv = ["evaluate", str(runs / "markov"), "--report"]
    assert main([*argv, str(tmp_path / "file" / "r.html")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    same = str(tmp_path / "same.html")
    assert main([*argv, same, "--json", same]) == 2
    assert "name one file" in capsys.readouterr().err


def test_bars_and_lines_of_negative_values_stay_in_the_plot() -> None:
    svg = bar_chart(["g1", "g2"], {"a": [-0.2, -0.1]}, title="t", x_label="x", y_label="y")
    root = ET.fromstring(svg)
    frame = next(r for r in root.findall(f"{SVG}rect") if r.get("fill") == "none")
    top, bottom = float(frame.get("y", 0)), float(frame.get("y", 0)) + float(frame.get("height", 0))
    for bar in (r for r in root.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None):
        y, h = float(bar.get("y", 0)), float(bar.get("height", 0))
        assert top - 0.1 <= y <= y + h <= bottom + 0.1
    svg = line_chart({"a": [(1, -0.5), (2, -0.1)]}, title="t", x_label="x", y_label="y")
    for dot in ET.fromstring(svg).findall(f"{SVG}circle"):
        assert top - 0.1 <= float(dot.get("cy", 0)) <= bottom + 0.1
    assert ">0</text>" in svg  # zero is on the axis


def test_report_edge_cases() -> None:
    def result(name: str, hr: float, ks: tuple[int, ...] = (5, 50)) -> EvalResult:
        return EvalResult(name, "test", 3, ks, {"HR": {k: hr for k in ks}}, True, 0.1)

    # cut-offs without 10 and 20: the table shows the evaluated ones nearest them
    page = report_html([result("a", 0.1), result("b", math.nan), result("c", 0.05)])
    assert "<th>HR@5</th>" in page
    assert "<th>HR@50</th>" in page
    assert "<b>0.1000</b>" in page  # the best of the finite values, a NaN aside
    assert "<b>" not in report_html([result("a", 0.1), result("b", math.nan)])  # one value
    # one label per result; logs of no result and a loss that is NaN throughout are left out
    with pytest.raises(ValueError, match="a label of its own"):
        report_html([result("a", 0.1), result("a", 0.2)])
    nan_loss = [{"epoch": 1, "loss": math.nan}, {"epoch": 2, "loss": math.nan}]
    finite = [{"epoch": 1, "loss": 5.0}, {"epoch": 2, "loss": 4.0}]  # drawn if it were kept
    page = report_html([result("a", 0.1)], logs={"a": nan_loss, "other": finite})
    assert "training loss" not in page
    assert "other" not in page
    # every metric NaN: no chart, no error
    assert "<svg" not in report_html([result("a", math.nan, (10,))])
    # a series with no finite point has no line and no legend entry
    svg = line_chart(
        {"a": [(1, 0.5), (2, 0.6)], "b": [(1, math.nan)]}, title="t", x_label="x", y_label="y"
    )
    assert "<polyline" in svg
    assert 'points=""' not in svg
    assert ">b</text>" not in svg
    # a log value that is no number (null in a hand-edited log) is no point of its curve
    log = [{"epoch": 1, "loss": None, "valid": {"NDCG@10": None}}, {"epoch": 2, "loss": 4.0}]
    assert "training loss" in report_html([result("a", 0.1)], logs={"a": log})
    # each result shows its own cut-offs (a saved result at 10 and 20 beside a run at 5, 50)
    page = report_html([result("saved", 0.3, (10, 20)), result("run", 0.4, (5, 50))])
    heads = re.findall(r"<th>HR@(\d+)</th>", page)
    assert heads == ["5", "10", "20", "50"]
    # a column with one value compares nothing: no value is marked best
    assert "<b>" not in page
    page = report_html([result("saved", 0.3, (10, 20)), result("run", 0.4, (5, 10))])
    assert page.count("<b>0.4000</b>") == 1  # HR@10, the one column both have
    assert "<b>0.3000</b>" not in page

    # history-length groups carry their users only where every result has as many
    def grouped(name: str, users: int) -> EvalResult:
        groups = [{"events": "0-4", "users": users, "HR@10": 0.2, "NDCG@10": 0.1}]
        return dataclasses.replace(result(name, 0.1, (10,)), extra={"by_history_length": groups})

    assert "0-4 (7)" in report_html([grouped("a", 7), grouped("b", 7)])
    other = report_html([grouped("a", 7), grouped("b", 9)])
    assert "0-4 (7)" not in other
    assert ">0-4<" in other
    more = grouped("c", 7)  # a group the others have no user in
    more.extra["by_history_length"].append({"events": "5-9", "users": 3, "HR@10": 0.1})
    assert "5-9 (3)" not in report_html([grouped("a", 7), more])
    # results grouped at different cut-offs: a chart for each, none dropped
    at_5 = dataclasses.replace(
        result("d", 0.1, (5,)),
        extra={"by_history_length": [{"events": "0-4", "users": 7, "HR@5": 0.3}]},
    )
    page = report_html([grouped("a", 7), at_5])
    assert "HR@5 by history length" in page
    assert "HR@10 by history length" in page


def test_training_log_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no run folder"):
        training_log(tmp_path / "nope")
    assert training_log(tmp_path) == []  # a folder without a log: a baseline's


def test_report_names_each_models_split_and_note_where_they_differ() -> None:
    def result(name: str, users: int, items: int, in_history: float) -> EvalResult:
        extra = {"n_items": items, "targets_in_history": in_history}
        return EvalResult(name, "test", users, (10,), {"HR": {10: 0.1}}, True, 0.1, extra)

    same = report_html([result("a", 164, 149, 0.5), result("b", 164, 149, 0.5)])
    assert "test split: 164 users, 149 items, seen items excluded;" in same
    assert "note: 50.0% of the test targets" in same  # once, without a name
    assert "note: a:" not in same
    mixed = report_html([result("a", 164, 149, 0.517), result("b", 4378, 2222, 1.0)])
    assert "a: test split: 164 users, 149 items, seen items excluded; b: test split: 4,378" in mixed
    assert "note: a: 51.7% of the test targets" in mixed
    assert "note: b: 100.0% of the test targets" in mixed
    # a label with ": " in it is left whole, and left out whole
    assert "note: 50.0% of the test targets" in report_html([result("s: t", 164, 149, 0.5)])


def test_a_broken_last_line_of_the_training_log_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "loss": 5.0}\n{"epoch": 2, "lo')
    assert training_log(tmp_path) == [{"epoch": 1, "loss": 5.0}]


def test_runs_of_one_name_get_labels_of_their_own(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for parent in ("a", "b"):
        shutil.copytree(runs / "markov", tmp_path / parent / "markov")
    (tmp_path / "a" / "markov" / "metrics.jsonl").write_text('{"epoch": 1, "lo')  # broken
    argv = ["evaluate", str(tmp_path / "a" / "markov"), str(tmp_path / "b" / "markov")]
    assert main([*argv, "--ks", "10"]) == 0  # the log is read for a report only
    text = capsys.readouterr().out
    assert "| a/markov |" in text
    assert "| b/markov |" in text
    # one model twice: no difference on any user
    same = "+0.0000 ± 0.0000, p 1.000"
    assert "| model minus a/markov | HR@10 | NDCG@10 |" in text
    assert f"| b/markov | {same} | {same} |" in text
    assert main([*argv, "--report", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<td>a/markov</td>" in page
    assert "<td>b/markov</td>" in page
