"""The command line end to end (simulate, prepare, train, evaluate, recommend) and its errors."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from rich.table import Table

import behaviorlm as blm
from behaviorlm import cli
from behaviorlm.cli import main
from behaviorlm.data.errors import DataError
from behaviorlm.models import MODELS
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.progress import print_table


def quick(model: str) -> list[str]:
    """Overrides that keep a neural model's training to seconds in tests."""
    if issubclass(MODELS[model][1], NeuralRecommender):
        return ["--train.epochs=1", "--model.max_len=20"]
    return []


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    assert (
        main(["simulate", str(root / "raw"), "--users", "150", "--seed", "3", "--format", "csv"])
        == 0
    )
    assert (root / "raw" / "events.csv").is_file()
    assert main(["prepare", str(root / "raw"), str(root / "ds")]) == 0
    assert (root / "ds" / "dataset.json").is_file()
    return root


@pytest.mark.parametrize("model", sorted(MODELS))
def test_train_evaluate_recommend(
    prepared: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = prepared / "runs" / model
    argv = ["train", str(prepared / "ds"), "--model", model, "--out", str(out), *quick(model)]
    assert main(argv) == 0
    assert (out / "artifact.json").is_file()
    capsys.readouterr()
    metrics = prepared / f"{model}.json"
    assert main(["evaluate", str(out), "--ks", "5,10", "--json", str(metrics)]) == 0
    table = capsys.readouterr().out
    assert "| model | metric | @5 | @10 |" in table
    results = json.loads(metrics.read_text())
    assert 0.0 <= results[0]["metrics"]["HR"]["10"] <= 1.0
    ndcg = next(line for line in table.splitlines() if line.startswith(f"| {model} | NDCG |"))
    assert ndcg.split("|")[4].strip() == f"{results[0]['metrics']['NDCG']['10']:.4f}"
    error = next(line for line in table.splitlines() if "| ± NDCG |" in line)
    assert error.split("|")[4].strip() == f"{results[0]['standard_errors']['NDCG']['10']:.4f}"
    # --json -: the JSON alone on standard output, the table on standard error
    assert main(["evaluate", str(out), "--ks", "5,10", "--json", "-"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)[0]["metrics"] == results[0]["metrics"]
    assert "| model | metric | @5 | @10 |" in printed.err
    assert not Path("-").exists()
    for name in ("Coverage", "Popularity"):  # as the README's protocol lists them
        row = next(line for line in table.splitlines() if line.startswith(f"| {model} | {name} |"))
        assert row.split("|")[4].strip() == f"{results[0]['metrics'][name]['10']:.4f}"
    user = json.loads((prepared / "ds" / "dataset.json").read_text())
    assert user["n_users"] > 0
    users_table = __import__("polars").read_parquet(prepared / "ds" / "users.parquet")
    first = users_table["user_id"][0]
    assert main(["recommend", str(out), "--user", first, "-k", "5", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert recs[0]["user_id"] == first
    assert 1 <= len(recs[0]["recommendations"]) <= 5
    assert {"item_id", "title", "score"} <= set(recs[0]["recommendations"][0])


def test_evaluate_takes_artifacts_after_its_options(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [tmp_path / "pop", tmp_path / "markov"]
    for run in runs:
        assert main(["train", str(prepared / "ds"), "--model", run.name, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(runs[0]), "--include-seen", "--ks", "10", str(runs[1])]) == 0
    table = capsys.readouterr().out
    assert "| pop | HR |" in table
    assert "| markov | HR |" in table
    with pytest.raises(SystemExit, match="2"):  # argparse's own refusal
        main(["evaluate", str(runs[0]), "--bogus", str(runs[1])])
    assert "unrecognised arguments: --bogus" in capsys.readouterr().err


def test_an_output_path_that_is_a_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "out.parquet"
    file.write_text("")
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu1,i1,1\nu1,i2,2\n")
    for argv in (["simulate", str(file), "--users", "5"], ["prepare", str(log), str(file)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{file} is a file" in err
        assert "done:" not in err  # nothing simulated or read first
    assert file.read_text() == ""


def test_prepare_never_overwrites_its_input(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    events = (prepared / "raw" / "events.csv").read_bytes()
    (raw / "events.csv").write_bytes(events)
    capsys.readouterr()
    for argv, words in (
        (["prepare", str(raw), str(raw)], "would overwrite the input"),
        (["prepare", str(prepared / "ds"), str(tmp_path / "again")], "prepared data set already"),
    ):
        assert main(argv) == 2, argv
        assert words in capsys.readouterr().err
    assert (raw / "events.csv").read_bytes() == events
    assert not (raw / "dataset.json").exists()
    parquet = tmp_path / "p"  # a Parquet log named as the prepared events table
    parquet.mkdir()
    pl.read_csv(raw / "events.csv").write_parquet(parquet / "events.parquet")
    assert main(["prepare", str(parquet / "events.parquet"), str(parquet)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    model = tmp_path / "model"  # a trained model's folder is no place for a data set
    model.mkdir()
    (model / "artifact.json").write_text("{}")
    assert main(["prepare", str(raw), str(model)]) == 2
    assert "training run's folder" in capsys.readouterr().err
    assert sorted(p.name for p in model.iterdir()) == ["artifact.json"]
    # the Python API refuses the same
    with pytest.raises(DataError, match="would overwrite the input"):
        blm.prepare(raw, raw)
    with pytest.raises(DataError, match="training run's folder"):
        blm.prepare(raw, model)
    with pytest.raises(DataError, match="training run's folder"):
        blm.Dataset.load(prepared / "ds").save(model)
    assert (raw / "events.csv").read_bytes() == events
    assert sorted(p.name for p in model.iterdir()) == ["artifact.json"]


def saved_with_per_user(prepared: Path, folder: Path, saved: str) -> Path:
    """``pop`` and ``markov`` trained into ``folder``; the run ``saved`` evaluated into
    ``folder/saved.json`` with its per-user values."""
    for model in ("pop", "markov"):
        argv = ["train", str(prepared / "ds"), "--model", model, "--out", str(folder / model)]
        assert main(argv) == 0
    path = folder / f"{saved}.json"
    assert main(["evaluate", str(folder / saved), "--json", str(path), "--per-user"]) == 0
    return path


def test_evaluate_pairs_a_run_with_results_saved_with_their_per_user_values(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = saved_with_per_user(prepared, tmp_path, "pop")
    assert "HR@10" in json.loads(saved.read_text())[0]["per_user"]
    capsys.readouterr()
    # the saved pop against markov evaluated now: the same table and pairing as both now
    assert main(["evaluate", str(saved), str(tmp_path / "markov"), "--ks", "10"]) == 0
    later = capsys.readouterr().out
    both = ["evaluate", str(tmp_path / "pop"), str(tmp_path / "markov"), "--ks", "10"]
    assert main(both) == 0
    now = capsys.readouterr().out

    def paired(printed: str) -> list[str]:
        return [
            line for line in printed.split("Paired by user")[1].splitlines() if "markov" in line
        ]

    assert paired(later) == paired(now)
    assert len(paired(now)) == 1
    assert "±" in paired(now)[0]
    # without --per-user the saved result is shown, and named as not paired
    plain = tmp_path / "plain.json"
    assert main(["evaluate", str(tmp_path / "pop"), "--json", str(plain)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "markov"), str(plain), "--ks", "10"]) == 0
    assert "saved without per-user values" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "pop"), "--per-user"]) == 2
    assert "add --json" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"not": "results"}')
    assert main(["evaluate", str(tmp_path / "bad.json")]) == 2
    assert "not the results of `behaviorlm evaluate --json`" in capsys.readouterr().err
    result = json.loads(saved.read_text())[0]
    broken = {**result, "per_user": {"HR10": result["per_user"]["HR@10"]}}
    short = {**result, "per_user": {"HR@10": result["per_user"]["HR@10"][:-1]}}
    extra = result["extra"]
    hand_made = (
        ({**result, "ks": []}, "cut-offs of 1 and up"),
        ({**result, "ks": [0, 10]}, "cut-offs of 1 and up"),
        ({**result, "extra": {**extra, "by_history_length": "x"}}, "must be a list"),
        ({**result, "extra": {**extra, "by_history_length": [{"events": "abc"}]}}, "no range"),
        ({**result, "extra": {**extra, "by_history_length": [{"events": "1-4"}]}}, "user count"),
    )
    for case, words in (
        (broken, "is not metric@k"),
        (short, "values for"),
        ([], "no results"),
        *hand_made,
    ):
        (tmp_path / "case.json").write_text(json.dumps(case))
        for extra_args in ([], ["--report", str(tmp_path / "r.html")]):
            assert main(["evaluate", str(tmp_path / "case.json"), *extra_args]) == 2
            err = capsys.readouterr().err
            assert words in err
            assert len(err.strip().splitlines()) == 1, err
    (tmp_path / "one.json").write_text(json.dumps(result))  # one result, as to_json writes it
    assert main(["evaluate", str(tmp_path / "one.json")]) == 0
    # the per-user file is compact: not a line per value
    assert len(saved.read_text().splitlines()) == 1
    # a file read is not overwritten by --json
    assert main(["evaluate", str(saved), str(tmp_path / "markov"), "--json", str(saved)]) == 2
    assert "one of the saved results read" in capsys.readouterr().err
    # nor a file of a run, a data set or a model; a file of one's own in a run folder is
    run = tmp_path / "markov"
    for owned in ("artifact.json", "config.json", "dataset/events.parquet", "model/model.json"):
        before = (run / owned).read_bytes()
        assert main(["evaluate", str(run), "--json", str(run / owned)]) == 2
        assert "is a file of the " in capsys.readouterr().err
        assert (run / owned).read_bytes() == before
    for argv in (
        ["recommend", str(run), "--all-users", "--out", str(run / "dataset" / "events.parquet")],
        ["export-events", str(tmp_path / "store.db"), str(prepared / "ds" / "events.parquet")],
    ):
        assert main(argv) == 2
        assert "is a file of the data set in" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--json", str(run / "eval.json")]) == 0
    assert main(["evaluate", str(run / "eval.json")]) == 0
    # one's own file named like a mark is one's own, written again and again; a link to a
    # run's file is that file
    for name in ("model.json", "dataset.json", "artifact.json"):
        for _ in range(2):
            assert main(["evaluate", str(run), "--json", str(tmp_path / "mine" / name)]) == 0
    (tmp_path / "link.json").symlink_to(run / "artifact.json")
    assert main(["evaluate", str(run), "--json", str(tmp_path / "link.json")]) == 2
    assert "is a file of the run in" in capsys.readouterr().err


def test_saved_results_pair_at_a_shared_cut_off_and_keep_their_own_training_log(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = saved_with_per_user(prepared, tmp_path, "markov")
    capsys.readouterr()
    # the saved result has every default cut-off, the new one @20 alone: paired at @20
    assert main(["evaluate", str(saved), str(tmp_path / "pop"), "--ks", "20"]) == 0
    printed = capsys.readouterr().out
    assert "| model minus markov | HR@20 | NDCG@20 |" in printed
    assert "not paired" not in printed
    # a saved result is shown at its own cut-offs beside those asked for now
    assert main(["evaluate", str(saved), str(tmp_path / "pop"), "--ks", "7"]) == 0
    printed = capsys.readouterr().out
    hr = json.loads(saved.read_text())[0]["metrics"]["HR"]
    assert "| model | metric | @1 | @5 | @7 | @10 | @20 |" in printed
    assert f"| markov | HR | {hr['1']:.4f} | {hr['5']:.4f} | - | {hr['10']:.4f} |" in printed
    # a result that cannot be paired does not choose the cut-off of those that can
    plain = tmp_path / "plain.json"
    assert main(["evaluate", str(tmp_path / "pop"), "--ks", "5", "--json", str(plain)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(saved), str(plain), str(tmp_path / "pop")]) == 0
    printed = capsys.readouterr().out
    assert "| model minus markov | HR@10 | NDCG@10 |" in printed
    assert "not paired: pop (pop has no per-user HR@10" in printed
    # results of other held-out events are named as such
    valid = tmp_path / "valid.json"
    assert main(["evaluate", str(tmp_path / "pop"), "--on", "valid", "--json", str(valid)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(valid), str(tmp_path / "markov")]) == 0
    assert "of different held-out events (test, valid)" in capsys.readouterr().out
    # a new run labelled like the saved one keeps its own training log in the report
    again = tmp_path / "again" / "markov"
    shutil.copytree(tmp_path / "markov", again)
    (again / "metrics.jsonl").write_text(
        "".join(f'{{"epoch": {e}, "loss": 1.0}}\n' for e in (1, 2, 3))
    )
    report = tmp_path / "r.html"
    assert main(["evaluate", str(saved), str(again), "--report", str(report)]) == 0
    rows = [r for r in report.read_text().split("<tr>") if r.startswith("<td>markov")]
    assert rows[0].startswith("<td>markov</td>")  # the saved one: no training log
    assert "3 (not validated)" not in rows[0]
    assert rows[1].startswith("<td>markov#2</td>")
    assert "3 (not validated)" in rows[1]


def test_evaluate_sorts_its_cut_offs_and_creates_the_json_folder(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pop"
    assert main(["train", str(prepared / "ds"), "--model", "pop", "--out", str(out)]) == 0
    capsys.readouterr()
    metrics = tmp_path / "new" / "folder" / "m.json"
    assert main(["evaluate", str(out), "--ks", "10,5,10", "--json", str(metrics)]) == 0
    printed = capsys.readouterr().out
    assert "| model | metric | @5 | @10 |" in printed
    saved = json.loads(metrics.read_text())[0]
    assert sorted(saved["metrics"]["HR"]) == ["10", "5"]
    hr, error = saved["metrics"]["HR"], saved["standard_errors"]["HR"]
    assert f"| HR | {hr['5']:.4f} | {hr['10']:.4f} |" in printed
    assert f"| ± HR | {error['5']:.4f} | {error['10']:.4f} |" in printed
    assert "± is the standard error of the mean over the users" in printed
    report = tmp_path / "r.html"
    for flags in (["--json", str(tmp_path)], ["--report", str(tmp_path / "dir.html")]):
        (tmp_path / "dir.html").mkdir(exist_ok=True)
        capsys.readouterr()
        assert main(["evaluate", str(out), "--report", str(report), *flags]) == 2
        captured = capsys.readouterr()
        assert "is a folder; name a file to write" in captured.err
        assert "| model |" not in captured.out  # refused before any evaluation


def test_train_with_config_file_and_overrides(prepared: Path, tmp_path: Path) -> None:
    config = tmp_path / "knn.toml"
    config.write_text('[run]\nmodel = "itemknn"\n\n[split]\ntarget_actions = ["purchase"]\n')
    out = tmp_path / "knn"
    assert main(["train", str(prepared / "ds"), "--config", str(config), "--out", str(out)]) == 0
    run = json.loads((out / "artifact.json").read_text())["run"]
    assert run["config"]["split"]["target_actions"] == ["purchase"]
    assert run["config"]["run"]["model"] == "itemknn"
    # an override with a space in its value, before the data set; one for another command
    spaced = tmp_path / "spaced"
    argv = ["train", "--model", "pop", "--split.target_actions=[purchase, cart]"]
    assert main([*argv, "--out", str(spaced), str(prepared / "ds")]) == 0
    run = json.loads((spaced / "artifact.json").read_text())["run"]
    assert run["config"]["split"]["target_actions"] == ["purchase", "cart"]
    with pytest.raises(SystemExit, match="2"):  # argparse's own refusal
        main(["evaluate", str(spaced), "--train.lr=1 0"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prepare", "{root}/nope.csv", "{root}/out"], "no such file or folder"),
        (["train", "{root}/raw", "--model", "pop"], "not a prepared data set"),
        (["train", "{root}/ds", "--model", "pop", "--model.nope=1"], "unknown config key"),
        (["train", "{root}/ds"], "no model given"),
        (["evaluate", "{root}/ds"], "not a behaviorlm artifact"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    prepared: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.format(root=prepared) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("behaviorlm: error:")
    assert message in err[0]


def test_unknown_user_and_console_script_without_traceback(prepared: Path) -> None:
    out = prepared / "runs" / "pop-unknown"
    assert main(["train", str(prepared / "ds"), "--model", "pop", "--out", str(out)]) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "behaviorlm.cli", "recommend", str(out), "--user", "no-such-user"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown user id(s): no-such-user" in proc.stderr


def test_recommend_filters(prepared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = prepared / "runs" / "pop-filters"
    assert main(["train", str(prepared / "ds"), "--model", "pop", "--out", str(out)]) == 0
    items = __import__("polars").read_parquet(prepared / "ds" / "items.parquet")
    category = items["category"][0]
    user = __import__("polars").read_parquet(prepared / "ds" / "users.parquet")["user_id"][0]
    capsys.readouterr()
    argv = ["recommend", str(out), "--user", user, "-k", "5", "--json", "--category", category]
    assert main(argv) == 0
    recs = json.loads(capsys.readouterr().out)[0]["recommendations"]
    assert recs
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1))
    assert all(category in r["category"].split("|") for r in recs)
    top = recs[0]["item_id"]
    assert main([*argv, "--exclude", top]) == 0
    again = json.loads(capsys.readouterr().out)[0]["recommendations"]
    assert top not in [r["item_id"] for r in again]
    # "a|b" given, as items list them, means items of a or of b
    categories = sorted({c for cats in items["category"].drop_nulls() for c in cats.split("|")})
    both = "|".join(categories[:2])
    assert main([*argv[:-1], both]) == 0
    recs = json.loads(capsys.readouterr().out)[0]["recommendations"]
    assert recs
    assert all(set(r["category"].split("|")) & set(categories[:2]) for r in recs)
    assert main([*argv[:-1], "|"]) == 2  # no category named: refused, not every item
    capsys.readouterr()
    assert main([*argv[:-2], "--category", "no-such-category"]) == 2
    capsys.readouterr()
    assert main([*argv, "--category", "no-such-category"]) == 2  # one typo among good names
    err = capsys.readouterr().err
    assert "no item has category 'no-such-category'" in err
    assert f"items table: {min(c for c in categories if c)}" in err  # the known ones, sorted
    # a list cut short by the filters says so (the JSON on standard output stays a list)
    rare = items.drop_nulls("category").group_by("category").len().sort("len")["category"][0]
    short = ["recommend", str(out), "--user", user, "-k", "50", "--category", rare]
    assert main([*short, "--json"]) == 0
    captured = capsys.readouterr()
    shown = len(json.loads(captured.out)[0]["recommendations"])
    assert shown < 50
    assert f"note: {shown} of 50 items for user {user}: the filters (seen items, --category)" in (
        captured.err
    )
    assert main(short[:4]) == 0  # a full list of 10: no note
    assert "note:" not in capsys.readouterr().err
    catalogue = len(items)  # past the catalogue the list is short whatever the filters
    wide = ["recommend", str(out), "--user", user, "-k", str(catalogue + 5), "--include-seen"]
    assert main(wide) == 0
    assert f"the catalogue has {catalogue:,} items" in capsys.readouterr().err


def test_recommend_action_counts_only_those_events_as_seen(
    prepared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = prepared / "runs" / "pop-action"
    assert main(["train", str(prepared / "ds"), "--model", "pop", "--out", str(out)]) == 0
    art = blm.Artifact.load(out)
    events = art.dataset.events
    viewed = events.filter(events["action"] == art.dataset.action_code("view"))
    user = int(viewed["user"][0])
    user_id = str(art.dataset.users["user_id"][user - 1])
    mine = events.filter(events["user"] == user)
    bought = set(mine.filter(mine["action"] == art.dataset.action_code("purchase"))["item"])
    k = art.dataset.n_items
    argv = ["recommend", str(out), "--user", user_id, "-k", str(k), "--json"]
    capsys.readouterr()
    assert main([*argv, "--action", "purchase"]) == 0
    listed = {r["item_id"] for r in json.loads(capsys.readouterr().out)[0]["recommendations"]}
    names = art.dataset.items["item_id"]
    assert not listed & {names[i - 1] for i in bought}  # purchases are seen ...
    only_viewed = set(mine["item"]) - bought
    assert only_viewed
    assert {names[i - 1] for i in only_viewed} <= listed  # ... views are not
    assert main([*argv, "--action", "PURCHASE"]) == 0  # as events read it
    folded = {r["item_id"] for r in json.loads(capsys.readouterr().out)[0]["recommendations"]}
    assert folded == listed
    assert main([*argv, "--action", "purchase", "--include-seen"]) == 2
    assert main([*argv, "--action", "fly"]) == 2
    capsys.readouterr()
    # a built-in action without events would leave nothing out: refused, with the ones it has
    absent = [a for a in art.dataset.vocab["action"] if a not in art.dataset.event_actions()]
    assert absent
    assert main([*argv, "--action", absent[0]]) == 2
    err = capsys.readouterr().err
    assert f"no event of this data set on an item has the action {absent[0]!r}" in err
    assert "view" in err
    assert absent[0] not in err.split("on items:")[1]
    # so would searches, which have no item
    assert "search" in art.dataset.event_actions()
    assert main([*argv, "--action", "search"]) == 2
    err = capsys.readouterr().err
    assert "on an item has the action 'search'" in err
    assert "search" not in err.split("on items:")[1]


@pytest.mark.parametrize("output", [["--json"], []])  # print() and rich's tables
def test_output_to_a_closed_pipe_ends_quietly(prepared: Path, output: list[str]) -> None:
    out = prepared / "runs" / "pop-pipe"
    if not out.exists():
        assert main(["train", str(prepared / "ds"), "--model", "pop", "--out", str(out)]) == 0
    users = pl.read_parquet(prepared / "ds" / "users.parquet")["user_id"]
    argv = [sys.executable, "-m", "behaviorlm.cli", "recommend", str(out), "-k", "50", *output]
    for user in users[:200]:  # far more output than a pipe holds
        argv += ["--user", str(user)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # as `| head -c 10` does
    assert proc.wait(120) == 141
    assert proc.stderr.read() == b""


def test_recommend_every_user_to_a_file(
    prepared: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = prepared / "runs" / "markov-all"
    assert main(["train", str(prepared / "ds"), "--model", "markov", "--out", str(out)]) == 0
    users = pl.read_parquet(prepared / "ds" / "users.parquet")["user_id"].to_list()
    monkeypatch.setattr(cli, "USERS_PER_STEP", 40)  # several steps of users
    lists = tmp_path / "recs.parquet"
    assert main(["recommend", str(out), "--all-users", "-k", "4", "--out", str(lists)]) == 0
    assert f"for {len(users):,} users" in capsys.readouterr().out
    table = pl.read_parquet(lists)
    assert table.columns == ["user_id", "rank", "item_id", "score"]
    assert set(table["user_id"]) == set(users)
    per_user = table.group_by("user_id", maintain_order=True).agg("rank", "score")
    assert all(r == list(range(1, len(r) + 1)) and len(r) <= 4 for r in per_user["rank"].to_list())
    assert all(s == sorted(s, reverse=True) for s in per_user["score"].to_list())
    # the same lists as the one-user path, for users of different steps
    for user in (users[0], users[45], users[-1]):
        assert main(["recommend", str(out), "--user", user, "-k", "4", "--json"]) == 0
        one = json.loads(capsys.readouterr().out)[0]["recommendations"]
        mine = table.filter(pl.col("user_id") == user)
        assert mine["item_id"].to_list() == [r["item_id"] for r in one]
        assert mine["score"].to_list() == pytest.approx([r["score"] for r in one])
    # csv and json lines hold the same rows; the filters apply as for one user
    for suffix in (".csv", ".jsonl"):
        other = tmp_path / f"recs{suffix}"
        assert main(["recommend", str(out), "--all-users", "-k", "4", "--out", str(other)]) == 0
        read = pl.read_csv(other) if suffix == ".csv" else pl.read_ndjson(other)
        assert read["item_id"].cast(pl.String).to_list() == table["item_id"].to_list()
    items = pl.read_parquet(prepared / "ds" / "items.parquet")
    category = items["category"][0]
    argv = ["recommend", str(out), "--user", users[0], "--user", users[1], "--out", str(lists)]
    assert main([*argv, "--category", category]) == 0
    allowed = set(items.filter(pl.col("category").str.contains(category, literal=True))["item_id"])
    assert set(pl.read_parquet(lists)["item_id"]) <= allowed
    # a user with nothing left after the filters has no row, and the summary says so
    excluded = [f"--exclude={i}" for i in sorted(allowed)]
    capsys.readouterr()
    assert main([*argv, "--category", category, *excluded]) == 0
    captured = capsys.readouterr()
    assert "(2 with no item left after the filters)" in captured.out
    assert (
        "note: 2 of 2 lists have fewer than 10 items (2 none): the filters (seen items, "
        "--category, --exclude) leave no more"
    ) in captured.err
    assert pl.read_parquet(lists).height == 0
    assert main(["recommend", str(out), "--all-users"]) == 2
    assert "add --out" in capsys.readouterr().err
    assert main([*argv, "--json"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert main(["recommend", str(out), "--all-users", "--out", str(tmp_path / "r.txt")]) == 2
    assert ".parquet" in capsys.readouterr().err


class Terminal(io.StringIO):
    """A file that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_tables_on_a_narrow_terminal_keep_their_numbers_whole() -> None:
    table = Table()
    for name in ("#", "when", "title", "item", "score"):
        table.add_column(name)
    for i in range(3):
        table.add_row(str(i + 1), "2023-11-23 09:13", "a rather long title " * 4, "i7", "-0.00123")
    terminal = Terminal()
    print_table(Console(file=terminal, width=40, force_terminal=True, color_system=None), table)
    lines = terminal.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 40
    assert sum("-0.00123" in line for line in lines) == 3
    assert sum("2023-11-23" in line for line in lines) == 3  # the hour may wrap, not the date
    assert sum(" i7 " in line for line in lines) == 3  # a narrow text column keeps its width
    # long headers over short numbers: the values whole and the names readable, the headers
    # cut only where their words do not fit
    for width, headers_whole in ((50, False), (64, True)):
        groups = Table()  # a table is narrowed for the terminal it is printed on: one each
        groups.add_column("group")
        for name in ("ablation Δp", "ablation Δlogit", "attributed Δp", "attributed Δlogit"):
            groups.add_column(name, justify="right")
        for name in ("history", "location", "followee events"):
            groups.add_row(name, "+0.0123", "+0.123", "-0.0123", "-0.123")
        terminal = Terminal()
        con = Console(file=terminal, width=width, force_terminal=True, color_system=None)
        print_table(con, groups)
        text = terminal.getvalue()
        assert max(len(line) for line in text.splitlines()) <= width
        assert all(f" {name} " in text for name in ("history", "location", "followee"))
        assert text.count("+0.0123") == text.count("-0.123") == 3
        assert ("…" not in text) is headers_whole
    # narrower than the numbers: left to rich as it is (cut), not an error
    terminal = Terminal()
    print_table(Console(file=terminal, width=12, force_terminal=True, color_system=None), table)
    assert terminal.getvalue()


@pytest.mark.parametrize("forced", [False, True], ids=["plain", "colour-forced"])
def test_tables_to_a_file_keep_their_natural_width(forced: bool) -> None:
    table = Table()
    table.add_column("title")
    table.add_column("Δp", justify="right")
    table.add_row("a title " * 12, "+0.5123")
    con = Console(file=io.StringIO(), width=80, force_terminal=forced)
    assert con.is_terminal is forced
    print_table(con, table)
    text = con.file.getvalue()
    assert "+0.5123" in text
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) > 80


def test_demo_refuses_too_few_users_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--users", "3", "--out", str(out)]) == 2
    assert "the demo needs at least 20 users (--users), got 3" in capsys.readouterr().err
    assert not out.exists()
    assert main(["demo", "--users", "20", "--seed", "-1", "--out", str(out)]) == 2
    assert "--seed must be 0 or more, got -1" in capsys.readouterr().err
    out.write_text("")
    assert main(["demo", "--users", "20", "--out", str(out)]) == 2
    assert f"--out {out} is a file; name a folder" in capsys.readouterr().err


def test_demo_runs_end_to_end_and_explains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--users", "300", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for model in ("pop-recent", "itemknn", "markov", "sasrec"):
        assert f"| {model} " in text
    assert "| model | HR@10 | HR@20 | NDCG@10 | NDCG@20 |" in text
    assert re.search(r"\| sasrec \| \d\.\d{4} ± \d\.\d{4} \|", text)  # with its error
    assert "Why sasrec recommends its top item" in text
    assert "feature groups" in text
    assert (out / "runs" / "sasrec" / "artifact.json").is_file()
    assert f"report with charts: {out / 'report.html'}" in text
    report = (out / "report.html").read_text()
    assert "validation NDCG@10" in report
    assert all(f"<td>{model}</td>" in report for model in ("pop-recent", "sasrec"))
    assert main(["demo", "--users", "300", "--report", str(tmp_path / "report.txt")]) == 2
    assert "name it *.html" in capsys.readouterr().err


def test_ctrl_c_is_one_line_with_the_way_to_go_on(
    prepared: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_train", interrupted)
    assert main(["train", str(prepared / "ds"), "--model", "sasrec"]) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "behaviorlm: interrupted; the same command with --resume continues from the last "
        "finished epoch"
    ]
    with pytest.raises(KeyboardInterrupt):  # --debug shows where
        main(["train", str(prepared / "ds"), "--model", "sasrec", "--debug"])


def test_titles_and_ids_print_as_written_not_as_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    import behaviorlm as blm

    raw = blm.simulate(60, seed=2)
    assert raw.items is not None
    titles = raw.items["title"] + pl.Series(["[refurbished] [/oops]"] * raw.items.height)
    ds = blm.preprocess(replace(raw, items=raw.items.with_columns(titles.alias("title"))))
    ds.save(tmp_path / "ds")
    assert (
        main(["train", str(tmp_path / "ds"), "--model", "pop", "--out", str(tmp_path / "pop")]) == 0
    )
    capsys.readouterr()
    user = str(ds.users["user_id"][0])
    assert main(["recommend", str(tmp_path / "pop"), "--user", user, "-k", "3"]) == 0
    assert "[refurbished] [/oops]" in capsys.readouterr().out


def test_simulate_and_prepare_take_the_python_apis_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    assert main(["simulate", str(raw), "--users", "40", "--events-per-user", "10"]) == 0
    events = pl.read_parquet(raw / "events.parquet")
    assert events.height == blm.simulate(40, seed=0, events_per_user=10).events.height
    assert main(["simulate", str(tmp_path / "r2"), "--events-per-user", "0"]) == 2
    assert "--events-per-user must be more than 0" in capsys.readouterr().err
    out = tmp_path / "ds"
    assert main(["prepare", str(raw), str(out), "--max-iterations", "0"]) == 2
    assert "max_iterations must be at least 1" in capsys.readouterr().err
    assert main(["prepare", str(raw), str(out), "--name", "shop", "--max-iterations", "9"]) == 0
    assert blm.Dataset.load(out).meta["name"] == "shop"


def test_evaluate_masks_only_the_items_done_with_an_action(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "markov"
    argv = ["train", str(prepared / "ds"), "--model", "markov", "--out", str(run)]
    assert main([*argv, "--split.target_actions=purchase"]) == 0
    out = tmp_path / "served.json"
    assert (
        main(["evaluate", str(run), "--ks", "10", "--action", "purchase", "--json", str(out)]) == 0
    )
    capsys.readouterr()
    saved = json.loads(out.read_text())[0]
    expected = blm.evaluate_artifact(run, ks=(10,), seen_actions=["purchase"])
    assert saved["metrics"]["HR"]["10"] == expected.metrics["HR"][10]
    assert saved["extra"]["seen_actions"] == ["purchase"]
    assert main(["evaluate", str(run), "--action", "purchase", "--include-seen"]) == 2
    assert "drop --include-seen" in capsys.readouterr().err
