"""The evaluation runner and its results: full ranking, means over rows, JSON, Markdown."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from behaviorlm.evaluate import (
    EvalResult,
    cutoff_notes,
    cutoff_table,
    evaluate,
    markdown_table,
    masking_notes,
    paired_difference,
)
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.schema import EvalSet, Sequences

# popularity counts: item 1: 1, item 2: 4, item 3: 3, item 4: 2, item 5: 0
TRAIN = Sequences.from_lists([[1, 2, 3], [2, 3, 4], [2, 3, 4, 2]], n_items=5)


def evalset(histories: list[list[int]], targets: list[list[int]]) -> EvalSet:
    counts = [len(t) for t in targets]
    flat = np.array([i for t in targets for i in t], dtype=np.int64)
    return EvalSet(
        histories=Sequences.from_lists(histories, n_items=5),
        target_offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
        targets=flat,
        target_event_ids=np.arange(len(flat), dtype=np.int64),
    )


@pytest.fixture
def pop() -> Pop:
    return Pop(PopConfig()).fit(TRAIN)


def test_evaluate_hand_computed(pop: Pop) -> None:
    # pop order 2, 3, 4, 1, 5
    # row 0: history [2] -> list 3, 4, 1, 5; target 4 at rank 2
    # row 1: history []  -> list 2, 3, 4, 1, 5; targets {1, 3} at ranks 4 and 2
    # row 2: history [5] -> list 2, 3, 4, 1; target 5 is seen, so excluded: no hit
    data = evalset([[2], [], [5]], [[4], [1, 3], [5]])
    result = evaluate(pop, data, ks=(2, 1, 4, 2), item_popularity=np.arange(6) / 10)
    assert result.ks == (1, 2, 4)
    assert result.n_users == 3
    assert result.model == "pop"
    assert result.metrics["HR"] == {1: 0.0, 2: pytest.approx(2 / 3), 4: pytest.approx(2 / 3)}
    assert result.metrics["MRR"][4] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    # recall@4: row 0 1/1, row 1 2/2, row 2 0
    assert result.metrics["Recall"][4] == pytest.approx(2 / 3)
    # ndcg@2: row 0 1/log2(3); row 1 (1/log2(3)) / (1 + 1/log2(3)); row 2 0
    l3 = np.log2(3)
    expected = (1 / l3 + (1 / l3) / (1 + 1 / l3)) / 3
    assert result.metrics["NDCG"][2] == pytest.approx(expected)
    # top-1 lists: 3, 2, 2 -> 2 distinct of 5 items
    assert result.metrics["Coverage"][1] == pytest.approx(2 / 5)
    # top-1 popularity: (0.3 + 0.2 + 0.2) / 3
    assert result.metrics["Popularity"][1] == pytest.approx(0.7 / 3)
    assert result.exclude_seen is True
    assert result.seconds >= 0
    # standard errors of the means over the three users: HR@2 per user 1, 1, 0
    assert result.errors["HR"][2] == pytest.approx(np.std([1, 1, 0], ddof=1) / np.sqrt(3))
    assert result.errors["HR"][1] == 0.0  # every user 0: no spread
    per_user = [1 / l3, (1 / l3) / (1 + 1 / l3), 0.0]
    assert result.errors["NDCG"][2] == pytest.approx(np.std(per_user, ddof=1) / np.sqrt(3))
    assert "Coverage" not in result.errors  # a catalogue figure, not a mean over users


def test_exclude_seen_switch(pop: Pop) -> None:
    # the target is the most popular item and already in the history
    data = evalset([[2]], [[2]])
    assert evaluate(pop, data, ks=(1,)).metrics["HR"][1] == 0.0
    included = evaluate(pop, data, ks=(1,), exclude_seen=False)
    assert included.metrics["HR"][1] == 1.0
    assert included.exclude_seen is False


def test_full_catalogue_is_ranked(pop: Pop) -> None:
    # item 5 was never seen in training: it still gets ranked, last (rank 5 of 5)
    data = evalset([[]], [[5]])
    result = evaluate(pop, data, ks=(4, 5))
    assert result.metrics["HR"] == {4: 0.0, 5: 1.0}
    assert result.metrics["MRR"][5] == pytest.approx(1 / 5)


def test_cut_offs_past_the_catalogue_take_the_whole_list(pop: Pop) -> None:
    # a list holds at most the 5 items: @20 and @200 measure the whole ranked catalogue
    data = evalset([[], [2]], [[5], [1]])
    result = evaluate(pop, data, ks=(5, 20, 200))
    for metric in ("HR", "MRR", "NDCG", "Recall", "Coverage"):
        assert result.metrics[metric][20] == result.metrics[metric][5], metric
        assert result.metrics[metric][200] == result.metrics[metric][5], metric
    assert result.metrics["HR"][200] == 1.0
    assert cutoff_notes([result]) == [
        "the catalogue has 5 items, so @20 and @200 measure the whole ranked list"
    ]
    assert cutoff_notes([evaluate(pop, data, ks=(5,))]) == []


def test_rows_without_targets_are_left_out(pop: Pop) -> None:
    data = evalset([[], [1], []], [[2], [], [3]])
    result = evaluate(pop, data, ks=(1,), name="label", split="valid")
    assert result.n_users == 2
    assert result.extra["rows_without_targets"] == 1
    assert result.metrics["HR"][1] == 0.5
    assert (result.model, result.split) == ("label", "valid")
    assert "Popularity" not in result.metrics


def test_bad_ks(pop: Pop) -> None:
    with pytest.raises(ValueError, match="ks"):
        evaluate(pop, evalset([[]], [[1]]), ks=(0, 5))
    with pytest.raises(ValueError, match="whole numbers"):  # not cut to 10
        evaluate(pop, evalset([[]], [[1]]), ks=(10.5,))  # type: ignore[arg-type]


def test_result_round_trip() -> None:
    result = EvalResult(
        model="markov",
        split="test",
        n_users=10,
        ks=(1, 10),
        metrics={"HR": {1: 0.25, 10: 0.5}, "NDCG": {1: 0.25, 10: 0.375}},
        exclude_seen=True,
        seconds=1.5,
        extra={"n_items": 7},
        errors={"HR": {1: 0.1, 10: 0.2}},
    )
    data = json.loads(result.to_json())
    assert data["metrics"]["HR"] == {"1": 0.25, "10": 0.5}
    assert data["standard_errors"]["HR"] == {"1": 0.1, "10": 0.2}
    assert EvalResult.from_dict(data) == result
    assert EvalResult.from_dict(result.to_dict()) == result
    del data["standard_errors"]  # a result saved before standard errors were kept
    assert EvalResult.from_dict(data).errors == {}


#: Two results for the tables: one without NDCG, one without the cut-off 20.
TABLE_RESULTS = [
    EvalResult("pop", "test", 3, (10, 20), {"HR": {10: 0.1, 20: 0.2}}, True, 0.0),
    EvalResult("markov", "test", 3, (10,), {"HR": {10: 0.123456}, "NDCG": {10: 0.5}}, True, 0.0),
]


@pytest.mark.parametrize(
    ("render", "expected"),
    [
        (
            cutoff_table,
            [
                "| model | metric | @10 | @20 |",
                "|---|---|---:|---:|",
                "| pop | HR | 0.1000 | 0.2000 |",
                "| pop | NDCG | - | - |",
                "| markov | HR | 0.1235 | - |",
                "| markov | NDCG | 0.5000 | - |",
            ],
        ),
        (
            markdown_table,
            [
                "| model | HR@10 | HR@20 | NDCG@10 | NDCG@20 |",
                "|---|---:|---:|---:|---:|",
                "| pop | 0.1000 | 0.2000 | - | - |",
                "| markov | 0.1235 | - | 0.5000 | - |",
            ],
        ),
    ],
)
def test_tables(render: Callable[..., str], expected: list[str]) -> None:
    assert render(TABLE_RESULTS, metrics=("HR", "NDCG"), ks=(10, 20)).splitlines() == expected


def test_a_label_with_a_bar_stays_one_cell_of_each_table() -> None:
    from behaviorlm.evaluate import Comparison, Difference, paired_table

    result = replace(TABLE_RESULTS[0], model="runs/a|b")
    for render in (cutoff_table, markdown_table):
        header, _, row = render([result], metrics=("HR",), ks=(10,)).splitlines()
        assert row.startswith("| runs/a\\|b | ")
        assert row.replace("\\|", "").count("|") == header.count("|")
    d = Difference("HR@10", 0.01, 0.004, 3, 0.1)
    table = paired_table(Comparison("x|y", 10, [("a|b", [d])], []), metrics=("HR",))
    assert table.splitlines()[0] == "| model minus x\\|y | HR@10 |"
    assert table.splitlines()[2].startswith("| a\\|b | +0.0100")


def test_paired_difference_pairs_users() -> None:
    from behaviorlm.evaluate import compare_to_first, paired_difference, paired_table
    from behaviorlm.models.markov import Markov, MarkovConfig

    data = evalset([[2], [1], [3], [4], [2, 3]], [[3], [2], [4], [2], [4]])
    pop = evaluate(Pop(PopConfig()).fit(TRAIN), data, ks=(1, 2))
    markov = evaluate(Markov(MarkovConfig()).fit(TRAIN), data, ks=(1, 2), name="markov")
    d = paired_difference(pop, markov, "NDCG", 2)
    per_user = markov.per_user["NDCG", 2] - pop.per_user["NDCG", 2]
    assert d.metric == "NDCG@2"
    assert d.difference == pytest.approx(markov.metrics["NDCG"][2] - pop.metrics["NDCG"][2])
    assert d.error == pytest.approx(np.std(per_user, ddof=1) / np.sqrt(5))
    assert d.p_value == pytest.approx(
        stats.ttest_rel(markov.per_user["NDCG", 2], pop.per_user["NDCG", 2]).pvalue
    )
    comparison = compare_to_first([pop, markov], k=2)
    assert comparison is not None
    table = paired_table(comparison)
    assert table.splitlines()[0] == "| model minus pop | HR@2 | NDCG@2 |"
    assert f"| markov | {markov.metrics['HR'][2] - pop.metrics['HR'][2]:+.4f} ± " in table
    # other users, other masking, or a result read back from JSON: refused
    fewer = evaluate(Pop(PopConfig()).fit(TRAIN), data.select(np.arange(4)), ks=(1, 2))
    unmasked = evaluate(Pop(PopConfig()).fit(TRAIN), data, ks=(1, 2), exclude_seen=False)
    saved = EvalResult.from_dict(markov.to_dict())
    assert saved == markov  # per-user values are left out of equality ...
    no_digest = replace(fewer, extra={})  # a result built by hand: nothing says who it measured
    cases = (
        (fewer, "not evaluated on the same users"),
        (no_digest, "not evaluated on the same users"),
        (unmasked, "masked seen items differently"),
        (saved, "saved without per-user values"),
        (evaluate(Pop(PopConfig()).fit(TRAIN), data, ks=(1,)), "evaluated at @1"),
    )
    for other, words in cases:
        with pytest.raises(ValueError, match=words):
            paired_difference(pop, other, "NDCG", 2)
    # at a cut-off one of them lacks, the reason no cut-off mends comes first
    unmasked_at_1 = evaluate(Pop(PopConfig()).fit(TRAIN), data, ks=(1,), exclude_seen=False)
    fewer_at_1 = evaluate(Pop(PopConfig()).fit(TRAIN), data.select(np.arange(4)), ks=(1,))
    for other, words in (
        (unmasked_at_1, "masked seen items differently"),
        (fewer_at_1, "not evaluated on the same users"),
    ):
        for k in (1, 2):
            with pytest.raises(ValueError, match=words):
                paired_difference(pop, other, "NDCG", k)
    for metric in ("ndcg", "Coverage"):  # a misspelt metric, or one of the whole list
        with pytest.raises(ValueError, match="its per-user metrics are HR, MRR, NDCG, Recall"):
            paired_difference(pop, markov, metric, 2)
    left = compare_to_first([pop, saved, markov], k=2)  # ... and of the saved file
    assert left is not None
    assert [label for label, _ in left.rows] == ["markov"]
    assert left.left_out[0].startswith("markov (markov has no per-user HR@2")
    assert "not paired: markov" in paired_table(left)
    # a result that cannot be paired does not choose the cut-off of those that can
    for other in (EvalResult.from_dict(fewer.to_dict()), fewer, unmasked):
        only_one = replace(other, ks=(1,), metrics={m: {1: v[1]} for m, v in other.metrics.items()})
        chosen = compare_to_first([pop, only_one, markov], k=2)
        assert chosen is not None
        assert chosen.k == 2
        assert [label for label, _ in chosen.rows] == ["markov"]
    # saved with its per-user values, it pairs as it did in memory
    kept = EvalResult.from_dict(json.loads(json.dumps(markov.to_dict(per_user=True))))
    assert paired_difference(pop, kept, "NDCG", 2) == paired_difference(pop, markov, "NDCG", 2)


def test_paired_differences_without_spread_and_one_user() -> None:
    from behaviorlm.evaluate import paired_difference

    data = evalset([[2], [1], [1]], [[3], [3], [3]])
    pop = evaluate(Pop(PopConfig()).fit(TRAIN), data, ks=(1, 2))
    better = replace(pop, model="better", per_user={("HR", 1): pop.per_user["HR", 1] + 1})
    # every user gains alike: an exact sign test, 2 * 0.5 ** 3, not a certainty
    d = paired_difference(pop, better, "HR", 1)
    assert (d.error, d.p_value, d.clear) == (0.0, 0.25, False)
    one = evaluate(Pop(PopConfig()).fit(TRAIN), data.select(np.array([0])), ks=(1,))
    assert one.errors == {}  # a mean over one user has no standard error


def test_a_set_without_targets_is_refused_not_scored_zero() -> None:
    pop = Pop(PopConfig()).fit(TRAIN)
    with pytest.raises(ValueError, match="no row of the evaluation set has a target"):
        evaluate(pop, evalset([[1], [2]], [[], []]), ks=(1, 10))
    assert evaluate(pop, evalset([[1], [2]], [[], [3]]), ks=(1,)).n_users == 1


def test_the_runs_split_is_the_one_evaluate_artifact_scores() -> None:
    """A model trained with followees' shares is scored on timelines that hold them:
    ``Artifact.split`` rebuilds that split, which ``leave_one_out`` alone does not."""
    import behaviorlm as blm

    ds = blm.preprocess(blm.simulate(80, seed=0))
    tiny = ["model.dim=8", "model.layers=1", "model.max_len=20", "train.epochs=1"]
    art = blm.train(ds, "sasrec", overrides=tiny, progress=False)  # the shipped config reads them
    assert art.followee_actions == ("share",)
    split = art.split()
    direct = blm.evaluate(art.model, split.test, ks=(10,))
    scored = blm.evaluate_artifact(art, ks=(10,)).metrics
    assert {m: direct.metrics[m] for m in ("HR", "NDCG", "MRR")} == {
        m: scored[m] for m in ("HR", "NDCG", "MRR")
    }
    own = blm.leave_one_out(ds).test
    assert len(split.test.histories.items) > len(own.histories.items)
    assert blm.make_split(
        ds, blm.SplitConfig(followee_actions=("share",))
    ).test.targets.tolist() == (split.test.targets.tolist())
    del art.run["config"]["split"]
    with pytest.raises(blm.DataError, match="does not say how its training data was split"):
        art.split()


def test_a_purchase_model_is_measured_on_the_lists_it_serves() -> None:
    """With every seen item masked, a model of next purchases scores 0 where each purchase
    follows a view of the item; ``seen_actions`` masks only what was bought, as
    ``recommend(..., seen_actions=...)`` and ``behaviorlm recommend --action`` serve."""
    import behaviorlm as blm

    ds = blm.preprocess(blm.simulate(100, seed=1))
    art = blm.train(ds, "markov", overrides=["split.target_actions=[purchase]"], progress=False)
    masked = blm.evaluate_artifact(art, ks=(10,))
    served = blm.evaluate_artifact(art, ks=(10,), seen_actions=["Purchase"])
    assert served.extra["seen_actions"] == ["purchase"]
    assert served.extra["targets_in_history"] < masked.extra["targets_in_history"]
    assert served.metrics["HR"][10] > masked.metrics["HR"][10]
    split = art.split()
    code = [ds.action_code("purchase")]
    lists = blm.recommend(art.model, split.test.histories, 10, seen_actions=code).items
    hits = [int(t) in row for t, row in zip(split.test.targets, lists, strict=True)]
    assert served.metrics["HR"][10] == pytest.approx(np.mean(hits))
    # two results masked differently are not paired, and the note says what was masked
    with pytest.raises(ValueError, match="masked seen items differently"):
        paired_difference(masked, served, "HR", 10)
    assert masked.metrics["HR"][10] == 0.0  # every purchase here follows a view
    # one mask in any order or repetition: the same names, and paired
    both = blm.evaluate_artifact(art, ks=(10,), seen_actions=["purchase", "cart", "PURCHASE"])
    again = blm.evaluate_artifact(art, ks=(10,), seen_actions=["cart", "purchase"])
    assert both.extra["seen_actions"] == again.extra["seen_actions"] == ["cart", "purchase"]
    assert paired_difference(both, again, "HR", 10).difference == 0.0
    with pytest.raises(ValueError, match="names no action"):
        blm.evaluate(art.model, split.test, ks=(10,), seen_actions=[])
    with pytest.raises(TypeError, match="seen actions are action codes"):
        blm.evaluate(art.model, split.test, ks=(10,), seen_actions=["purchase"])
    # a result saved before the mask had one form lists it in its own order: still paired
    saved = EvalResult.from_dict(both.to_dict(per_user=True))
    saved.extra["seen_actions"] = ["purchase", "cart"]
    assert paired_difference(saved, again, "HR", 10).difference == 0.0
    assert "items the user already did purchase on" in masking_notes([served])[0]
