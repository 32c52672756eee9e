"""The results table: prepare a data set, train each model with its frozen config, test once.

Every model runs in a fresh process (so its peak memory is its own) with the config file
``CONFIG_DIR/<model>.toml`` (``configs/<dataset>/`` for the published table, ``configs/default``
for any other data). Each prints one JSON line: test HR / NDCG / MRR at 10 and 20 with full
ranking and their standard errors over the test users, training wall time, epochs, the kept
epoch and its validation metrics, peak RSS.
``--per-user DIR`` also keeps each model's test result with every user's values in
``DIR/<name>-<model>.json`` (the file ``behaviorlm evaluate RUN --json FILE --per-user``
writes), so that ``behaviorlm evaluate DIR/beauty-sasrec.json runs/new`` compares a new run
with the table's user by user.
``--markdown FILE...`` renders saved JSON lines as the README's results table instead: the
last line per data set and model wins, so name the
table's files only (exploratory runs live in ``explore_*.jsonl``). Examples::

    python benchmarks/results.py DATA/s3rec/Beauty.txt --name Beauty --config-dir configs/beauty \\
        --models pop,itemknn,markov,mlp,sasrec,hstu >> benchmarks/results/beauty.jsonl
    python benchmarks/results.py --simulate 20000 --name simulator --config-dir configs/simulator
    python benchmarks/results.py --markdown \\
        benchmarks/results/{beauty,sports,toys,ml-100k,simulator}.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from behaviorlm.config import load_toml
from behaviorlm.data.io import read
from behaviorlm.data.preprocess import preprocess
from behaviorlm.data.synthetic import simulate
from behaviorlm.evaluate import evaluate_artifact
from behaviorlm.models import MODELS
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.train import train
from machine import machine_facts, peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
KS = (10, 20)
#: Row order of the table: baselines first, then the sequence models.
MODEL_ORDER = ("pop", "itemknn", "markov", "mlp", "hstu", "sasrec")


def one_model(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """Prepare the data, train ``model`` with its config file, evaluate on test."""
    start = time.perf_counter()
    raw = simulate(args.simulate, seed=args.seed) if args.simulate else read(args.data)
    dataset = preprocess(raw)
    prepare_s = time.perf_counter() - start
    config_path = Path(args.config_dir) / f"{model}.toml"
    if not config_path.is_file():
        raise SystemExit(f"no config {config_path}: every reported number needs a frozen config")
    config = load_toml(config_path)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        artifact = train(dataset, model, config=config, overrides=args.overrides, out_dir=tmp)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = evaluate_artifact(artifact, ks=KS, exclude_seen=not args.include_seen)
    eval_s = time.perf_counter() - t1
    name = args.name or dataset.meta.get("name", "data")
    kept = None
    if args.per_user:  # the evaluate --json --per-user file of the result
        kept = Path(args.per_user) / f"{name}-{model}.json"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps([result.to_dict(per_user=True)]) + "\n")
    fit = artifact.run.get("fit", {})
    try:
        config_name = str(config_path.resolve().relative_to(ROOT))
    except ValueError:
        config_name = str(config_path)
    return {
        "benchmark": "results",
        "dataset": name,
        "model": model,
        "config": config_name,
        "overrides": list(args.overrides),
        "users": dataset.n_users,
        "items": dataset.n_items,
        "events": dataset.n_events,
        "exclude_seen": not args.include_seen,
        "prepare_s": round(prepare_s, 2),
        "train_s": round(train_s, 1),
        "epochs": fit.get("epochs"),
        "best_epoch": fit.get("best_epoch"),
        # validation metrics of the kept epoch (none for the baselines)
        "best_valid": {k: round(v, 5) for k, v in (fit.get("best_valid") or {}).items()} or None,
        "device": fit.get("device", "cpu"),  # where it trained (older lines: see overrides, gpu)
        "eval_s": round(eval_s, 2),
        "peak_rss_mib": peak_rss_mib(),
        "metrics": {
            m: {str(k): round(v, 5) for k, v in by_k.items()} for m, by_k in result.metrics.items()
        },
        # each accuracy metric's standard error over the test users
        "standard_errors": {
            m: {str(k): round(v, 5) for k, v in by_k.items()} for m, by_k in result.errors.items()
        },
        **({"per_user_file": str(kept)} if kept else {}),
        **machine_facts(),
    }


def shown(line: dict[str, Any]) -> str:
    """The run's overrides for the config cell (thread counts left out: they change no result;
    a baseline's ``train.*`` too: it has no training loop), and the GPU it trained on, if any.

    Examples
    --------
    >>> shown({"model": "sasrec", "overrides": ["train.threads=1", "model.dropout=0.5"]})
    ' `model.dropout=0.5`'
    >>> shown({"model": "markov", "overrides": ["train.time_budget_s=300"]})
    ''
    >>> shown({"overrides": [], "device": "cuda:0", "gpu": "NVIDIA H200"})
    ' (trained on NVIDIA H200)'
    """
    model = MODELS.get(line.get("model", ""))
    baseline = model is not None and not issubclass(model[1], NeuralRecommender)
    kept = [
        o
        for o in line.get("overrides", [])
        if not o.startswith("train.threads=") and not (baseline and o.startswith("train."))
    ]
    device = line.get("device", "cpu")
    where = f" (trained on {line.get('gpu', device)})" if device != "cpu" else ""
    return "".join(f" `{o}`" for o in kept) + where


def markdown(files: Sequence[str]) -> str:
    """The results table of saved JSON lines (the last line per data set, model and masking)."""
    rows: dict[tuple[str, str, bool], dict[str, Any]] = {}
    for file in files:
        for text in Path(file).read_text().splitlines():
            if text.strip():
                line = json.loads(text)
                if line.get("benchmark") == "results":
                    rows[(line["dataset"], line["model"], line["exclude_seen"])] = line
    head = (
        "| data set | model | HR@10 | NDCG@10 | HR@20 | NDCG@20 | train time | epochs "
        "| peak RSS | config |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    out = [head]
    datasets = list(dict.fromkeys(key[0] for key in rows))  # in the order of the files

    def order(key: tuple[str, str, bool]) -> tuple[int, bool, int, str]:
        model = MODEL_ORDER.index(key[1]) if key[1] in MODEL_ORDER else len(MODEL_ORDER)
        return datasets.index(key[0]), not key[2], model, key[1]

    for key in sorted(rows, key=order):
        line = rows[key]
        m = line["metrics"]
        minutes = line["train_s"] / 60
        time_text = f"{minutes:.1f} min" if minutes >= 1 else f"{line['train_s']:.0f} s"
        name = line["dataset"] + ("" if line["exclude_seen"] else " (seen not masked)")
        out.append(
            f"| {name} | {line['model']} | {m['HR']['10']:.4f} | {m['NDCG']['10']:.4f} "
            f"| {m['HR']['20']:.4f} | {m['NDCG']['20']:.4f} | {time_text} "
            f"| {line['epochs'] or '-'} "
            f"| {line['peak_rss_mib'] / 1024:.2f} GiB | `{line['config']}`{shown(line)} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", nargs="?", help="file or folder that `behaviorlm prepare` reads")
    parser.add_argument("--simulate", type=int, help="use the simulator with this many users")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed")
    parser.add_argument("--name", default=None, help="data set name in the output")
    parser.add_argument("--models", default="pop,itemknn,markov,mlp,sasrec,hstu")
    parser.add_argument("--config-dir", default=str(ROOT / "configs" / "default"))
    parser.add_argument("--include-seen", action="store_true", help="do not mask seen items")
    parser.add_argument("--markdown", nargs="+", metavar="JSONL", help="render saved lines")
    parser.add_argument(
        "--per-user", metavar="DIR", help="keep each result with its per-user values in DIR"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides for all models")
    args = parser.parse_intermixed_args()
    if args.markdown:
        print(markdown(args.markdown))
        return
    if args.simulate is not None and args.data is not None:  # no path with --simulate:
        args.overrides = [args.data, *args.overrides]  # the first positional is an override
        args.data = None
    if (args.data is None) == (args.simulate is None):
        parser.error("give a data path or --simulate N")
    if args.one:
        print(json.dumps(one_model(args, args.one)), flush=True)
        return
    argv = [args.data] if args.data else ["--simulate", str(args.simulate)]
    argv += ["--seed", str(args.seed), "--config-dir", args.config_dir]
    argv += ["--name", args.name] if args.name else []
    argv += ["--include-seen"] if args.include_seen else []
    argv += ["--per-user", args.per_user] if args.per_user else []
    for model in args.models.split(","):
        cmd = [sys.executable, __file__, *argv, "--one", model, *args.overrides]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
