"""The end-to-end demo: simulate a shop -> prepare -> train -> evaluate -> recommend -> explain.

Every step is the same public function a user would call; the demo only strings them
together and prints what they return: the baselines and a SASRec trained for a one-minute
budget, their test metrics, a few users' recommendations, and why the sequence model
recommends its top item to the first of them (exact leave-one-out occlusion).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from rich.table import Table

from behaviorlm.artifact import Artifact
from behaviorlm.data.dataset import Dataset
from behaviorlm.data.io import read
from behaviorlm.data.preprocess import preprocess
from behaviorlm.data.synthetic import simulate, write_simulation
from behaviorlm.evaluate import error_notes, evaluate_artifact, markdown_table, masking_notes
from behaviorlm.explain import explain_user, labelled_explanation
from behaviorlm.explain.view import print_explanation
from behaviorlm.progress import console, print_table, step
from behaviorlm.recommend import recommend
from behaviorlm.report import training_log, write_report
from behaviorlm.train import train
from behaviorlm.train.folder import discard_unfinished

#: Training budget of the sequence model in the demo (seconds).
DEMO_TRAIN_SECONDS = 60
#: Models the demo trains, with the overrides it passes (each a baseline of the results table).
DEMO_MODELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("pop", "pop", ()),
    ("pop-recent", "pop", ("model.window_seconds=604800",)),
    ("itemknn", "itemknn", ()),
    ("markov", "markov", ()),
    # the shipped sasrec config (the followees' shares, bf16, a cosine decay over the budget),
    # with the demo's budget and a shorter patience
    ("sasrec", "sasrec", ("train.patience=3", f"train.time_budget_s={DEMO_TRAIN_SECONDS}")),
)
DEMO_KS = (1, 5, 10, 20, 50)
#: Fewer simulated users leave too few to validate and test on (with 3, every validation
#: target can be an item the user has seen, and the sequence model's run is refused).
MIN_DEMO_USERS = 20
REPORT_TITLE = "behaviorlm demo: the simulated shop"


def run_demo(
    users: int = 10_000,
    seed: int = 0,
    out: Path | None = None,
    show_users: int = 3,
    report: Path | None = None,
) -> None:
    """Run the demo, printing the results table and a few users' recommendations.

    Parameters
    ----------
    users : int
        Number of simulated users (at least ``MIN_DEMO_USERS``, 20).
    seed : int
        Simulator seed: the data set is the same for a seed, and so are the baselines'
        figures; the sequence model trains against a 60-second clock, so its figures, and
        the recommendations and explanation shown, can differ a little between runs.
    out : Path, optional
        Folder to keep the simulated files, the prepared data set and the artifacts in
        (and the report, as ``report.html``, unless ``report`` names another file); a
        temporary folder by default.
    show_users : int
        How many users' recommendations to print.
    report : Path, optional
        Write the HTML evaluation report with charts (:func:`behaviorlm.report.write_report`)
        to this file.

    Examples
    --------
    >>> run_demo(users=200, show_users=1)  # doctest: +SKIP
    """
    if users < MIN_DEMO_USERS:  # before any work
        raise ValueError(f"the demo needs at least {MIN_DEMO_USERS} users (--users), got {users}")
    if seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {seed}")
    if out is not None and out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; name a folder to keep the demo's files in")
    if report is None and out is not None:
        report = out / "report.html"
    if out is None:
        with tempfile.TemporaryDirectory(prefix="behaviorlm-demo-") as tmp:
            _run(users, seed, Path(tmp), show_users, report)
    else:
        _run(users, seed, out, show_users, report)
        console.print(f"\nfiles kept in {out}", soft_wrap=True)


def _run(users: int, seed: int, out: Path, show_users: int, report: Path | None) -> None:
    with step(f"simulating a shop with {users:,} users"):
        files = write_simulation(simulate(users, seed=seed), out / "raw", format="parquet")
    with step(f"reading {files}"):
        raw = read(files)
    with step("preprocessing"):
        dataset = preprocess(raw)
        dataset.save(out / "dataset")
    console.print(
        f"data set: {dataset.n_events:,} events, {dataset.n_users:,} users, "
        f"{dataset.n_items:,} items"
    )
    artifacts = {}
    for label, model, overrides in DEMO_MODELS:
        discard_unfinished(out / "runs" / label)  # a demo cut short is run again, whole
        with step(f"training {label}"):
            artifacts[label] = train(
                dataset, model, overrides=overrides, out_dir=out / "runs" / label
            )
    results = []
    for label, artifact in artifacts.items():
        with step(f"evaluating {label} (full ranking, {dataset.n_items:,} items)"):
            results.append(replace(evaluate_artifact(artifact, ks=DEMO_KS), model=label))
    console.print("\nTest metrics (leave-one-out, full ranking, seen items filtered):\n")
    table = markdown_table(results, metrics=("HR", "NDCG"), ks=(10, 20), errors=True)
    console.print(table, soft_wrap=True)
    notes = [*error_notes(results), *masking_notes(results)]
    for note in notes:
        console.print(f"note: {note}", soft_wrap=True)
    if report is not None:
        logs = {label: training_log(out / "runs" / label) for label in artifacts}
        written = write_report(results, report, logs=logs, title=REPORT_TITLE)
        console.print(f"report with charts: {written}", soft_wrap=True)
    best = max(results, key=lambda r: r.metrics["NDCG"][10])
    console.print(f"\nRecommendations of the best model ({best.model}):")
    _show_users(artifacts[best.model], dataset, show_users)
    if show_users:
        user = str(dataset.users["user_id"][0])
        sasrec = artifacts["sasrec"]
        console.print(f"\nWhy sasrec recommends its top item to user {user}:")
        why = explain_user(sasrec, user, method="occlusion")
        print_explanation(console, user, labelled_explanation(sasrec, why))


def _show_users(artifact: Artifact, dataset: Dataset, n: int) -> None:
    user_ids = dataset.users["user_id"].head(n).to_list()
    histories = artifact.histories(user_ids)
    ranked = recommend(artifact.model, histories, 5)
    titles = (
        dataset.items["title"] if "title" in dataset.items.columns else dataset.items["item_id"]
    ).to_list()
    actions = dataset.vocab["action"]
    users = dataset.users["user_id"].to_list()
    for r, user in enumerate(user_ids):
        row = histories.row(r)
        recent = [
            " ".join(
                [actions[a - 1], *(["by", users[f - 1]] if f > 0 else []), titles[i - 1]]
                if i
                else [actions[a - 1], "(search)"]
            )
            for a, i, f in zip(row.actions[-4:], row.items[-4:], row.followees()[-4:], strict=True)
        ]
        console.print(f"\nuser {user}, last events: " + "; ".join(recent), soft_wrap=True)
        table = Table()
        table.add_column("#", justify="right")
        table.add_column("recommended item")
        table.add_column("score", justify="right")
        for rank, (item, score) in enumerate(
            zip(ranked.items[r], ranked.scores[r], strict=True), 1
        ):
            if item > 0:
                table.add_row(str(rank), str(titles[int(item) - 1]), f"{score:.4f}")
        print_table(console, table)
