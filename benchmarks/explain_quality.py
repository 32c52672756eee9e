"""Are the explanations right? Ground truth, deletion / insertion curves and a sanity check.

Trains a sequence model with ``configs/default/<model>.toml`` (plus ``section.key=value``
overrides), or loads one with ``--artifact``, and prints JSON lines:

``ground_truth_event`` (simulator only)
    Test events whose planted cause is a single earlier event of the same user that the
    model reads (inside its ``max_len`` window): the share where the top-1 attributed event
    (largest logit influence; attention: largest weight) *is* that event, per method, with
    the chance level (1 / events read) beside it. ``truth_cause_event`` holds the simulator's
    ``event_id``, mapped here to the data set's rows. Also split into events whose item is
    new to the window (a view steered by the cause) and funnel events (the item is already in
    the window, in the user's own earlier events, where the view itself is a strong rival of
    the planted cause, or in a followee's share of it).
    ``top1_is_cause_without_target_events``: the same with the user's own events on the
    target item set aside first (``explain(..., without_target_events=True)``: why the user
    comes to the item at all).
``ground_truth_group`` (simulator only)
    Test events whose planted cause is a group (history, social, search, location, device):
    the share where the planted group has the largest attribution among those five groups,
    by group ablation (same for every method) and by the method's attributions summed per
    group (integrated gradients: every group; occlusion and shapley: the event kinds history,
    search, social), and ``combined``: the summed attributions of the groups that are events
    (history, search, social) beside the ablation of those that are token components
    (location, device); with the confusion counts; each also without the target's events (as
    above).
``ground_truth_reach`` (simulator only)
    For the most shared items, predicted reach of every user with followers
    (:func:`behaviorlm.rank_by_reach`: exposure rate learned from the log times the
    followers' uplifts; the share itself in each follower's timeline and the rate relative to
    the pooled one for a model that reads followees' shares), averaged over the items.
    Spearman correlations with the users' planted ``truth_influence`` (the chance that a
    follower sees a share): of reach per
    follower, of reach itself, and of reach against the true expected reach, followers x
    influence; the same for the exposure rate alone, over all users and over users with at
    least ``--reach-min-trials`` share trials (the estimate needs evidence); and reach without
    the exposure rate (every follower sees every share), as before the rate was learned.
``curves``
    For sampled test users, the explained target (``--target top``: the top recommendation;
    ``test``: the held-out item) re-scored after deleting the k events with the largest
    attribution (k = 0..10) and with only those k kept (insertion, k = 1..10), per method and
    for a random order: mean probability relative to the full timeline, mean rank (1 = best
    of the whole catalogue); deletion AUC (the area under the relative probability over
    k = 0..10 by the trapezoid rule, over the width 10, so a curve that stays at 1 has 1; lower
    is better) and insertion AUC (the same over k = 1..10, higher is better). Users need more
    than 10 events in the model's window.
``sanity``
    The same users explained by a model of the same architecture with freshly initialised
    weights: Spearman correlation of the per-event attributions with the trained model's and
    the share of identical top-1 events (attributions of a random model must differ).

Examples::

    python benchmarks/explain_quality.py --simulate 5000 --model sasrec train.time_budget_s=600
    python benchmarks/explain_quality.py --data DATA/s3rec/Beauty.txt --model sasrec \\
        train.time_budget_s=900
    python benchmarks/explain_quality.py --artifact runs/sasrec-beauty --sample 200
    python benchmarks/explain_quality.py --simulate 2000 --artifact runs/sim --parts reach
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from scipy.stats import spearmanr

import behaviorlm as blm
from behaviorlm.config import from_dict, load_toml
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.explain import (
    Explanation,
    GroupInfluence,
    Target,
    explain,
    rank_by_reach,
    reaching_event,
)
from behaviorlm.explain.explanation import ALIASES, METHODS
from behaviorlm.explain.shapley import SAMPLES
from behaviorlm.explain.target import neural, resolve_target, window
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import Sequences, Split
from machine import machine_facts, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"
#: Planted-cause groups that are feature groups (the simulator's "none" is not).
PLANTED = ("history", "social", "search", "location", "device")
KS = tuple(range(1, 11))


#: What the benchmark can run (``--parts``); the first three need the simulator.
PARTS = ("events", "groups", "reach", "curves")


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def top_event(e: Explanation, by: str = "logit") -> int:
    """Data set row (``event_id``) of the event with the largest attribution."""
    values = [
        (ev.attention if e.method == "attention" else getattr(ev, by)) or 0.0 for ev in e.events
    ]
    return e.events[int(np.argmax(values))].event_id


def event_scores(e: Explanation) -> np.ndarray:
    """Per-event attribution used for ordering (logit influence; attention weight)."""
    return np.array(
        [(ev.attention if e.method == "attention" else ev.logit) or 0.0 for ev in e.events],
        dtype=np.float64,
    )


def explained(
    net: NeuralRecommender,
    history: Sequences,
    target: Target,
    method: str,
    args: argparse.Namespace,
    aside: bool = False,
) -> Explanation:
    """``explain`` with the benchmark's integrated-gradients steps and Shapley samples."""
    return explain(
        net,
        history,
        target,
        method,
        steps=args.steps,
        samples=args.samples,
        seed=args.shapley_seed,
        without_target_events=aside,
    )


def round_dict(values: dict[str, float], digits: int = 4) -> dict[str, float]:
    return {k: round(float(v), digits) for k, v in values.items()}


# ---------------------------------------------------------------- data and model


def load(args: argparse.Namespace) -> tuple[blm.Artifact, blm.Dataset | None, str]:
    """The model's artifact, the data set with ground truth (simulator) or None, its name."""
    truth: blm.Dataset | None = None
    if args.simulate:
        raw = blm.simulate(args.simulate, seed=args.seed, events_per_user=args.events_per_user)
        truth = blm.preprocess(raw)
    if args.artifact:
        artifact = blm.Artifact.load(args.artifact)
        name = artifact.dataset.meta.get("name") or Path(args.artifact).name
        if truth is not None:
            ours, theirs = artifact.dataset, truth
            if (ours.n_users, ours.n_items, ours.n_events) != (
                theirs.n_users,
                theirs.n_items,
                theirs.n_events,
            ):
                raise SystemExit(
                    "--simulate/--seed do not reproduce the artifact's data set "
                    f"({theirs.n_users}/{theirs.n_items}/{theirs.n_events} users/items/events "
                    f"vs {ours.n_users}/{ours.n_items}/{ours.n_events})"
                )
            artifact = blm.Artifact(model=artifact.model, dataset=truth, run=artifact.run)
        return artifact, truth, str(name)
    if truth is not None:
        dataset, name = truth, f"simulator-{args.simulate}"
    else:
        dataset = blm.preprocess(blm.read(args.data))
        name = Path(args.data).stem or Path(args.data).name
    config = load_toml(CONFIGS / f"{args.model}.toml")
    start = time.perf_counter()
    artifact = blm.train(
        dataset,
        args.model,
        config=config,
        overrides=args.overrides,
        out_dir=args.save,
        progress=args.progress,
    )
    emit(
        {
            "benchmark": "explain_quality",
            "part": "train",
            "dataset": name,
            "model": args.model,
            "overrides": list(args.overrides),
            "users": dataset.n_users,
            "items": dataset.n_items,
            "events": dataset.n_events,
            "train_s": round(time.perf_counter() - start, 1),
            "epochs": artifact.run.get("fit", {}).get("epochs"),
            "NDCG@10": round(blm.evaluate_artifact(artifact, ks=(10,)).metrics["NDCG"][10], 5),
        }
    )
    return artifact, truth, name


def split_of(artifact: blm.Artifact) -> Split:
    stored = artifact.run.get("config", {}).get("split")
    if stored is None:
        raise SystemExit("the artifact does not record its split")
    return make_split(artifact.dataset, from_dict(SplitConfig, stored))


def randomised(net: NeuralRecommender, seed: int) -> NeuralRecommender:
    """The same architecture and vocabularies with freshly initialised weights."""
    assert net.sizes is not None
    fresh = copy.deepcopy(net)
    torch.manual_seed(seed)
    fresh.module = fresh.build(net.sizes)
    fresh.module.eval()
    return fresh


# ---------------------------------------------------------------- ground truth


def ground_truth_events(
    net: NeuralRecommender,
    ds: blm.Dataset,
    split: Split,
    methods: list[str],
    args: argparse.Namespace,
    common: dict[str, Any],
) -> None:
    """Top-1 attributed event against the planted single cause, per method."""
    ev = ds.events
    sim_id = ev["event_id"].to_numpy().astype(np.int64)
    row_of = np.full(int(sim_id.max()) + 1, -1, dtype=np.int64)
    row_of[sim_id] = np.arange(len(sim_id))
    test = split.test
    targets = ev[test.target_event_ids]
    cause = targets["truth_cause_event"].fill_null(-1).to_numpy().astype(np.int64)
    group = targets["truth_cause_group"].to_list()
    max_len = int(net.config.max_len)
    h = test.histories
    reasons: Counter[str] = Counter()
    eligible: list[tuple[int, int, str, bool]] = []  # (row, cause row, group, item new)
    for r in range(len(h)):
        if cause[r] < 0:
            reasons["no single cause event"] += 1
            continue
        cause_row = int(row_of[cause[r]]) if cause[r] < len(row_of) else -1
        lo, hi = int(h.offsets[r]), int(h.offsets[r + 1])
        rows = h.event_ids[lo:hi]
        if cause_row < 0 or cause_row not in set(rows.tolist()):
            reasons[f"cause not in the user's timeline ({group[r]})"] += 1
            continue
        read = rows[-max_len:]
        if cause_row not in set(read.tolist()):
            reasons["cause older than the model's window"] += 1
            continue
        item_new = int(test.targets[r]) not in set(h.items[hi - len(read) : hi].tolist())
        eligible.append((r, cause_row, group[r], item_new))
    rng = np.random.default_rng(args.seed)
    if len(eligible) > args.users:
        pick = np.sort(rng.choice(len(eligible), args.users, replace=False))
        eligible = [eligible[i] for i in pick]
    hits: dict[bool, dict[str, Counter[str]]] = {
        aside: {m: Counter() for m in methods} for aside in (False, True)
    }
    counts: Counter[str] = Counter()
    chance: Counter[str] = Counter()
    chance_sum: dict[str, float] = {}
    start = time.perf_counter()
    for r, cause_row, g, item_new in eligible:
        history = h.row(r)
        target = Target.item(int(test.targets[r]))
        keys = ("all", f"group={g}", "item new" if item_new else "funnel (item seen)")
        for key in keys:
            counts[key] += 1
        for m, aside in itertools.product(methods, (False, True)):
            e = explained(net, history, target, m, args, aside)
            for key in keys:
                hits[aside][m][key] += int(top_event(e) == cause_row)
                if m != "attention":
                    hits[aside][m][key + " (probability)"] += int(
                        top_event(e, "probability") == cause_row
                    )
            if m == methods[0] and not aside:
                for key in keys:
                    chance[key] += 1
                    chance_sum[key] = chance_sum.get(key, 0.0) + 1.0 / len(e.events)

    def shares(found: dict[str, Counter[str]]) -> dict[str, dict[str, float]]:
        return {
            m: round_dict(
                {
                    k: v / counts[k.removesuffix(" (probability)")]
                    for k, v in sorted(found[m].items())
                }
            )
            for m in methods
        }

    emit(
        {
            **common,
            "part": "ground_truth_event",
            "eligible": len(eligible),
            "excluded": dict(reasons),
            "counts": dict(counts),
            "chance": round_dict({k: chance_sum[k] / chance[k] for k in chance}),
            "top1_is_cause": shares(hits[False]),
            "top1_is_cause_without_target_events": shares(hits[True]),
            "goal": 0.9,
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


#: The planted groups that are events of the timeline (the rest are token components).
EVENT_GROUPS = ("history", "search", "social")


def combined(group: GroupInfluence) -> float:
    """A group's logit influence by the ``combined`` rule: its events' summed attributions
    where it is a kind of event and the method attributes events, else its ablation."""
    if group.group in EVENT_GROUPS and group.attributed_logit is not None:
        return group.attributed_logit
    return group.ablation_logit


def ground_truth_groups(
    net: NeuralRecommender,
    ds: blm.Dataset,
    split: Split,
    methods: list[str],
    args: argparse.Namespace,
    common: dict[str, Any],
) -> None:
    """Group with the largest attribution against the planted cause group."""
    test = split.test
    group = ds.events[test.target_event_ids]["truth_cause_group"].to_list()
    rows = [r for r in range(len(test)) if group[r] in PLANTED]
    rng = np.random.default_rng(args.seed + 1)
    if len(rows) > args.users:
        rows = sorted(rng.choice(rows, args.users, replace=False).tolist())
    by: dict[str, Counter[tuple[str, str]]] = {}
    start = time.perf_counter()
    for r in rows:
        target = Target.item(int(test.targets[r]))
        history = test.histories.row(r)
        alone = bool(((history.items == target.id) & ~history.is_followee_event()).all())
        for m, aside in itertools.product(methods, (False, True)):
            if aside and alone:  # nothing but the target's own events is left: a miss
                continue
            e = explained(net, history, target, m, args, aside)
            suffix = " without target events" if aside else ""
            present = [gi for gi in e.groups if gi.group in PLANTED]
            if m == methods[0]:
                best = max(present, key=lambda gi: gi.ablation_logit)
                by.setdefault("ablation" + suffix, Counter())[(group[r], best.group)] += 1
            summed = [gi for gi in present if gi.attributed_logit is not None]
            if summed:
                best = max(summed, key=lambda gi: gi.attributed_logit or 0.0)
                by.setdefault(f"{m} summed{suffix}", Counter())[(group[r], best.group)] += 1
            if m != "attention":  # its weights are no influence to set beside an ablation
                best = max(present, key=combined)
                by.setdefault(f"{m} combined{suffix}", Counter())[(group[r], best.group)] += 1
    counts = Counter(group[r] for r in rows)
    out: dict[str, Any] = {}
    for name, confusion in by.items():
        right = sum(n for (t, p), n in confusion.items() if t == p)
        out[name] = {
            "share": round(right / max(1, len(rows)), 4),
            "per_group": {
                g: round(confusion[(g, g)] / counts[g], 4) for g in PLANTED if counts[g] > 0
            },
            "confusion": {f"{t}->{p}": n for (t, p), n in sorted(confusion.items())},
        }
    emit(
        {
            **common,
            "part": "ground_truth_group",
            "events": len(rows),
            "counts": dict(counts),
            "largest_group_is_planted": out,
            "goal": 0.9,
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


def ground_truth_reach(
    net: NeuralRecommender,
    artifact: blm.Artifact,
    ds: blm.Dataset,
    args: argparse.Namespace,
    common: dict[str, Any],
) -> None:
    """Spearman correlation of predicted reach with the users' true influence."""
    start = time.perf_counter()
    learned = blm.estimate_exposure(ds, "share")
    if learned is None:
        raise SystemExit("the log has no social views of shares: no exposure to learn")
    # what a share puts in a follower's timeline for this model, and how exposure weighs it
    reaching = reaching_event(artifact, "share")
    reaching.check()  # a model that never learned the event has no reach to measure
    exposure = reaching.weights(learned)
    assert exposure is not None
    follows = ds.follows
    follower = follows["follower"].to_numpy().astype(np.int64)
    followee = follows["followee"].to_numpy().astype(np.int64)
    share = ds.action_code("share")
    shared = ds.events.filter(pl.col("action") == share)["item"].value_counts(sort=True)
    items = [int(i) for i in shared["item"].head(args.reach_items).to_list()]
    users = np.unique(followee)
    reach = np.zeros(len(users), dtype=np.float64)
    per_item: dict[str, float] = {}
    truth = ds.users.sort("user")["truth_influence"].to_numpy()[users - 1]
    sequences = artifact.timelines()  # followee events included where the model reads them
    rate = exposure.rates(users).astype(np.float64)  # aligned with ``users``
    for item in items:
        ranking = rank_by_reach(
            net,
            sequences,
            follower,
            followee,
            item,
            users=users,
            action=reaching.action,
            source=reaching.source,
            followee_event=reaching.followee,
            exposure=exposure,
        )
        order = np.argsort(ranking.users)
        r = ranking.reach[order].astype(np.float64)  # aligned with ``users`` (sorted ids)
        reach += r / len(items)
        per_item[str(item)] = round(float(spearmanr(r / rate, truth).statistic), 4)
    n_followers = np.bincount(followee, minlength=int(users.max()) + 1)[users]
    uplift_only = reach / rate  # every follower sees every share
    evidence = exposure.trials[users] >= args.reach_min_trials

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        return round(float(spearmanr(a, b).statistic), 4)

    emit(
        {
            **common,
            "part": "ground_truth_reach",
            "users": len(users),
            "items": items,
            "spearman_reach_per_follower_vs_influence": rho(reach / n_followers, truth),
            "spearman_reach_vs_followers_x_influence": rho(reach, n_followers * truth),
            "spearman_reach_vs_influence": rho(reach, truth),
            "spearman_reach_vs_followers": rho(reach, n_followers),
            "reaching_event": "followee share" if reaching.followee else "social view",
            "exposure": {
                "pooled": round(learned.pooled, 4),
                "prior_strength": round(learned.strength, 2),
                "users_with_trials": int((learned.trials[users] > 0).sum()),
                "spearman_vs_influence": rho(rate, truth),
                # a reference for what the log can show: the true influence of every user
                # with a trial, one shared value for users without one
                "spearman_bound_true_where_observed": rho(
                    np.where(exposure.trials[users] > 0, truth, truth.mean()), truth
                ),
                f"users_with_{args.reach_min_trials}_trials": int(evidence.sum()),
                f"spearman_vs_influence_{args.reach_min_trials}_trials": rho(
                    rate[evidence], truth[evidence]
                ),
            },
            f"users_with_{args.reach_min_trials}_trials": {
                "spearman_reach_per_follower_vs_influence": rho(
                    (reach / n_followers)[evidence], truth[evidence]
                ),
                "spearman_reach_vs_followers_x_influence": rho(
                    reach[evidence], (n_followers * truth)[evidence]
                ),
            },
            "without_exposure": {
                "spearman_reach_per_follower_vs_influence": rho(uplift_only / n_followers, truth),
                "spearman_reach_vs_followers_x_influence": rho(uplift_only, n_followers * truth),
                "spearman_reach_vs_influence_per_item": per_item,
            },
            "goal": 0.8,
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


# ---------------------------------------------------------------- curves and sanity


def curve_rows(history: Sequences, window: np.ndarray, order: np.ndarray) -> Sequences:
    """Row 0: the timeline; rows 1..10: without the first k of ``order``; 11..20: only those."""
    n = len(history.items)
    keep = np.ones((1 + 2 * len(KS), n), dtype=bool)
    for j, k in enumerate(KS):
        top = window[order[:k]]
        keep[1 + j, top] = False
        keep[1 + len(KS) + j] = False
        keep[1 + len(KS) + j, top] = True
    return history.select(np.zeros(len(keep), dtype=np.int64)).take_events(keep.ravel())


def target_curve(net: NeuralRecommender, rows: Sequences, item: int) -> tuple[np.ndarray, ...]:
    """(R,) probability and rank (1 = best of the catalogue) of ``item`` after each row."""
    scores = net.score(rows).astype(np.float64)  # (R, N) items 1..N
    top = scores.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    mine = scores[:, item - 1]
    rank = 1 + (scores > mine[:, None]).sum(axis=1)
    return np.exp(mine - log_z), rank.astype(np.float64)


def curves_and_sanity(
    net: NeuralRecommender,
    split: Split,
    methods: list[str],
    args: argparse.Namespace,
    common: dict[str, Any],
) -> None:
    """Deletion / insertion curves per method and random order; the randomised-weights check."""
    start = time.perf_counter()
    test = split.test
    h = test.histories
    max_len = int(net.config.max_len)
    ok = np.flatnonzero(np.minimum(h.lengths, max_len) > len(KS))
    rng = np.random.default_rng(args.seed + 2)
    users = np.sort(rng.choice(ok, min(args.sample, len(ok)), replace=False))
    orders = [*methods, "random"]
    rel: dict[str, list[np.ndarray]] = {m: [] for m in orders}
    ranks: dict[str, list[np.ndarray]] = {m: [] for m in orders}
    rand_net = randomised(net, args.seed + 3)
    same_top: Counter[str] = Counter()
    rhos: dict[str, list[float]] = {m: [] for m in methods}
    for r in users:
        history = h.row(int(r))
        target: Target | None = None
        if args.target == "test":
            target = Target.item(int(test.targets[r]))
        if target is None:
            target = resolve_target(net, history, None)
        read = window(net, history)  # flat indices of the events the model reads
        for m in orders:
            if m == "random":
                order = rng.permutation(len(read))
            else:
                trained = explained(net, history, target, m, args)
                order = np.argsort(-event_scores(trained), kind="stable")
                other = explained(rand_net, history, target, m, args)
                a, b = event_scores(trained), event_scores(other)
                if np.ptp(a) > 0 and np.ptp(b) > 0:
                    rhos[m].append(float(spearmanr(a, b).statistic))
                same_top[m] += int(np.argmax(a) == np.argmax(b))
            prob, rank = target_curve(net, curve_rows(history, read, order), target.id)
            rel[m].append(prob / prob[0])
            ranks[m].append(rank)
    deletion: dict[str, Any] = {}
    for m in orders:
        p = np.mean(rel[m], axis=0)  # (21,) row 0 = full timeline
        k = np.mean(ranks[m], axis=0)
        del_curve, ins_curve = p[: 1 + len(KS)], p[1 + len(KS) :]
        deletion[m] = {
            "deletion_auc": round(float(np.trapezoid(del_curve) / len(KS)), 4),
            "insertion_auc": round(float(np.trapezoid(ins_curve) / (len(KS) - 1)), 4),
            "deletion_probability": [round(float(x), 4) for x in del_curve],
            "insertion_probability": [round(float(x), 4) for x in ins_curve],
            "deletion_rank": [round(float(x), 1) for x in k[: 1 + len(KS)]],
            "insertion_rank": [round(float(x), 1) for x in k[1 + len(KS) :]],
        }
    best_baseline = min(deletion[m]["deletion_auc"] for m in orders if m in ("attention", "random"))
    emit(
        {
            **common,
            "part": "curves",
            "target": args.target,
            "users": len(users),
            "eligible_users": len(ok),
            "k": [0, *KS],
            "relative_to": "probability of the target after the full timeline",
            "by_method": deletion,
            "beats_attention_and_random": {
                m: deletion[m]["deletion_auc"] < best_baseline for m in methods if m != "attention"
            },
            "seconds": round(time.perf_counter() - start, 1),
        }
    )
    emit(
        {
            **common,
            "part": "sanity",
            "users": len(users),
            "spearman_trained_vs_random_weights": {
                m: round(float(np.mean(v)), 4) if v else None for m, v in rhos.items()
            },
            "same_top1_share": {m: round(same_top[m] / max(1, len(users)), 4) for m in methods},
            "differs": {m: bool(v) and float(np.mean(v)) < 0.5 for m, v in rhos.items()},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", help="a data set path that behaviorlm.read reads")
    source.add_argument("--simulate", type=int, help="simulator users (ground truth checks)")
    parser.add_argument("--artifact", help="explain this trained artifact instead of training")
    parser.add_argument("--model", default="sasrec", help="sasrec, hstu or mlp")
    parser.add_argument("--seed", type=int, default=0, help="simulator and sampling seed")
    parser.add_argument(
        "--events-per-user", type=float, help="simulator mean events per user (default 40)"
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (sanity runs with curves)",
    )
    parser.add_argument("--users", type=int, default=300, help="test events per truth check")
    parser.add_argument("--sample", type=int, default=100, help="users for curves and sanity")
    parser.add_argument("--methods", default="occlusion,ig,shapley,attention")
    parser.add_argument("--steps", type=int, default=32, help="integrated gradients steps")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="shapley: orders sampled")
    parser.add_argument("--shapley-seed", type=int, default=0, help="shapley: seed of the orders")
    parser.add_argument("--reach-items", type=int, default=5, help="most shared items for reach")
    parser.add_argument(
        "--reach-min-trials",
        type=int,
        default=20,
        help="share trials (shares x followers) for the exposure correlation with evidence",
    )
    parser.add_argument("--target", choices=("top", "test"), default="top", help="curves target")
    parser.add_argument("--save", help="also save the trained artifact here")
    parser.add_argument("--progress", action="store_true", help="show training progress")
    parser.add_argument("overrides", nargs="*", help="section.key=value training overrides")
    args = parser.parse_intermixed_args()
    if not (args.data or args.simulate or args.artifact):
        parser.error("give --data PATH, --simulate N or --artifact DIR")
    if args.artifact and (args.data or args.save or args.overrides):
        # the artifact holds its data set and model: these would be read by nothing
        parser.error(
            "--artifact explains a saved model with its own data set: leave out --data, "
            "--save and training overrides (--simulate may give the simulator's ground truth)"
        )
    methods = [ALIASES.get(m, m) for m in args.methods.split(",")]
    # before any training: a typo would cost the whole run
    if set(methods) - set(METHODS):
        parser.error(f"unknown method(s) {', '.join(sorted(set(methods) - set(METHODS)))}")
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"unknown part(s) {', '.join(sorted(parts - set(PARTS)))}")
    artifact, truth, name = load(args)
    net = neural(artifact.model)
    if "attention" in methods and net.name == "mlp":
        methods.remove("attention")
    split = split_of(artifact)
    common: dict[str, Any] = {
        "benchmark": "explain_quality",
        "dataset": name,
        "model": net.name,
        "max_len": int(net.config.max_len),
        "methods": methods,
        "steps": args.steps,
        "samples": args.samples,
        "shapley_seed": args.shapley_seed,
    }
    if truth is not None:
        if "events" in parts:
            ground_truth_events(net, truth, split, methods, args, common)
        if "groups" in parts:
            ground_truth_groups(net, truth, split, methods, args, common)
        if "reach" in parts and truth.follows.height:
            ground_truth_reach(net, artifact, truth, args, common)
    if "curves" in parts:
        curves_and_sanity(net, split, methods, args, common)
    emit({**common, "part": "done", "peak_rss_mib": peak_rss_mib(), **machine_facts()})


if __name__ == "__main__":
    main()
