"""Attribution: each method's guarantee, checked against re-scoring with the model itself."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from rich.console import Console

import behaviorlm as blm
from behaviorlm.explain import Target, explain, gradients
from behaviorlm.explain.artifacts import labelled_explanation
from behaviorlm.explain.attention import attention, last_layer
from behaviorlm.explain.components import groups_of
from behaviorlm.explain.explanation import single_valued
from behaviorlm.explain.gradients import integrated_gradients, path_rule
from behaviorlm.explain.groups import ablate_groups, event_kinds
from behaviorlm.explain.occlusion import occlusion
from behaviorlm.explain.target import neural
from behaviorlm.explain.view import print_explanation
from behaviorlm.models.neural import FeatureConfig, NeuralRecommender
from behaviorlm.models.sasrec import Block, SASRec, SASRecConfig
from behaviorlm.schema import FOLLOWEE, SEARCH_SOURCE, SELF_SOURCE, SOCIAL_SOURCE, Sequences

NEURAL = ("sasrec", "hstu", "mlp")
TINY = {
    "sasrec": ["model.dim=16", "model.layers=2", "model.heads=2", "model.max_len=20"],
    "hstu": ["model.dim=16", "model.layers=1", "model.heads=2", "model.max_len=20"],
    "mlp": ["model.hidden=16", "model.max_len=20"],
}


@pytest.fixture(scope="module")
def dataset() -> blm.Dataset:
    return blm.preprocess(blm.simulate(150, seed=3))


@pytest.fixture(scope="module", params=NEURAL)
def art(request: pytest.FixtureRequest, dataset: blm.Dataset) -> blm.Artifact:
    overrides = [*TINY[request.param], "train.epochs=3", "train.threads=1"]
    return blm.train(dataset, request.param, overrides=overrides, progress=False, defaults=False)


def user_row(art: blm.Artifact) -> Sequences:
    """The timeline of a user with social events, clicks on search results among the events
    the model reads, and more events than it reads."""
    seqs = art.dataset.sequences()
    social = np.bincount(seqs.row_of_event[seqs.sources == SOCIAL_SOURCE], minlength=len(seqs))
    last = seqs.offsets[1:, None] - np.arange(1, 21)  # each row's last 20 events
    clicks = (seqs.sources[np.maximum(last, 0)] == SEARCH_SOURCE).any(axis=1)
    ok = np.flatnonzero((social > 0) & clicks & (seqs.lengths > 25) & (seqs.lengths < 60))
    return seqs.row(int(ok[0]))


def target_of(scores: np.ndarray, item: int) -> tuple[float, float]:
    """(logit, probability) of ``item`` from a row of ``model.score``."""
    s = scores.astype(np.float64)
    p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    return float(s[item - 1]), float(p[item - 1])


def test_occlusion_equals_rescoring_each_deletion(art: blm.Artifact) -> None:
    model, history = art.model, user_row(art)
    e = explain(model, history, method="occlusion")
    assert e.target == Target.item(int(blm.recommend(model, history, k=1).items[0, 0]))
    assert e.unread == len(history.items) - 20
    assert len(e.events) == 20
    full = target_of(model.score(history)[0], e.target.id)
    assert e.logit == pytest.approx(full[0], abs=1e-4)
    assert e.probability == pytest.approx(full[1], rel=1e-4)
    for event in e.events:
        keep = np.ones(len(history.items), dtype=bool)
        keep[event.index] = False
        logit, prob = target_of(model.score(history.take_events(keep))[0], e.target.id)
        assert event.logit == pytest.approx(full[0] - logit, abs=1e-4)
        assert event.probability == pytest.approx(full[1] - prob, abs=1e-6)


def test_occlusion_of_a_timeline_of_one_event(art: blm.Artifact) -> None:
    history = user_row(art)
    last = np.arange(len(history.items)) == len(history.items) - 1
    one, empty = history.take_events(last), history.take_events(np.zeros_like(last))
    e = explain(art.model, one, target=5, method="occlusion")
    full, without = target_of(art.model.score(one)[0], 5), target_of(art.model.score(empty)[0], 5)
    assert len(e.events) == 1
    assert e.events[0].logit == pytest.approx(full[0] - without[0], abs=1e-4)


def test_occlusion_deletes_only_events_the_model_reads(art: blm.Artifact) -> None:
    model, history = art.model, user_row(art)
    assert isinstance(model, NeuralRecommender)
    unread = len(history.items) - 21  # one event before the window of 20
    with pytest.raises(ValueError, match="events the model reads"):
        occlusion(model, history, Target.item(1), np.array([unread]))


@pytest.mark.parametrize("kind", ["item", "action"])
def test_integrated_gradients_completeness(art: blm.Artifact, kind: str) -> None:
    history = user_row(art)
    target = Target.item(5) if kind == "item" else Target.action(4)
    e = explain(art.model, history, target, method="ig")  # the default points, as users get
    assert e.steps is not None
    assert e.steps >= 32
    assert e.baseline_logit is not None
    assert e.baseline_probability is not None
    assert e.logit - e.baseline_logit != pytest.approx(0.0)
    for unit, baseline, score in (
        ("logit", e.baseline_logit, e.logit),
        ("probability", e.baseline_probability, e.probability),
    ):
        total = sum(getattr(ev, unit) for ev in e.events)
        assert total == pytest.approx(score - baseline, rel=0.01, abs=1e-7)
    for ev in e.events:  # a token's attribution splits exactly into its components
        assert sum(ev.components.values()) == pytest.approx(ev.logit, abs=1e-5)
    groups = sum(g.attributed_logit or 0.0 for g in e.groups)
    assert groups == pytest.approx(e.logit - e.baseline_logit, rel=0.01)


def test_path_rule_integrates_smooth_and_steep_functions() -> None:
    for steps in (1, 2, 3, 4, 7, 32):
        alpha, w = path_rule(steps)
        assert (alpha[0], alpha[-1], w[0], w[-1]) == (0.0, 1.0, 0.0, 0.0)  # the two scores
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
        assert bool((alpha[1:] > alpha[:-1]).all())
    alpha, w = path_rule(32)
    a, w = alpha.double(), w.double()
    assert float((w * a**5).sum()) == pytest.approx(1 / 6, rel=1e-6)  # exact (float32 points)
    # what a LayerNorm of alpha * x does near the baseline: from 0 to 1 within alpha ~ 0.003
    eps = 1e-5
    steep = float((w * eps / (a**2 + eps) ** 1.5).sum())  # d/da of a / sqrt(a^2 + eps)
    assert steep == pytest.approx(1 / (1 + eps) ** 0.5, rel=1e-3)
    with pytest.raises(ValueError, match="at least 1"):
        path_rule(0)


def test_integrated_gradients_doubles_the_points_until_complete(art: blm.Artifact) -> None:
    model, history = art.model, user_row(art)
    assert isinstance(model, NeuralRecommender)
    target = Target.item(5)
    first = integrated_gradients(model, history, target, steps=4, max_steps=4)
    assert first.steps == 4  # no doubling past max_steps, and the gap is reported
    total = sum(float(a.sum()) for a in first.logit.values())
    assert first.gap[0] == pytest.approx(total - (first.score[0] - first.baseline[0]), abs=1e-5)
    never = integrated_gradients(model, history, target, steps=4, tolerance=0.0, max_steps=16)
    assert never.steps == 16  # 4, 8, 16: each pass missed a tolerance of 0
    done = integrated_gradients(model, history, target, steps=4, tolerance=0.01)
    for gap, score, base in zip(done.gap, done.score, done.baseline, strict=True):
        assert abs(gap) <= max(0.01 * abs(score - base), 1e-5)
    with pytest.raises(ValueError, match="max_steps"):
        integrated_gradients(model, history, target, steps=64, max_steps=32)
    # a start above the default's 256 points can still double, twice (every pass missing)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gradients, "ATOL", (-1.0, -1.0))
        large = integrated_gradients(model, history, target, steps=200, tolerance=0.0)
    assert large.steps == 800
    with pytest.raises(ValueError, match="at most 4096 steps"):  # refused before any work
        integrated_gradients(model, history, target, steps=100_000)


def test_group_ablation_equals_rescoring_with_the_group_switched_off(art: blm.Artifact) -> None:
    model = art.model
    assert isinstance(model, NeuralRecommender)
    history, item = user_row(art), 7
    assert (history.sources[-20:] == SEARCH_SOURCE).any()  # the source split is exercised
    full = target_of(model.score(history)[0], item)
    ablated = ablate_groups(model, history, Target.item(item))
    expected = ["history"] if art.model.name == "mlp" else ["history", "actions", "time"]
    assert set(expected) <= set(ablated)
    tokens = model.module.tokens
    features = tokens.features
    for group, (d_logit, d_prob) in ablated.items():
        if group == "history":  # item 0 is padding: a zero item embedding
            rescored = model.score(replace(history, items=np.zeros_like(history.items)))
        else:
            tokens.features = replace(features, **{group: False})
            try:
                rescored = model.score(history)
            finally:
                tokens.features = features
        logit, prob = target_of(rescored[0], item)
        assert d_logit == pytest.approx(full[0] - logit, abs=1e-4), group
        assert d_prob == pytest.approx(full[1] - prob, abs=1e-6), group


def test_occlusion_group_sums_follow_event_kinds(art: blm.Artifact) -> None:
    e = explain(art.model, user_row(art), target=3)
    by_group = {g.group: g for g in e.groups}
    own = sum(ev.logit or 0.0 for ev in e.events if ev.kind == "history")
    assert by_group["history"].attributed_logit == pytest.approx(own, abs=1e-5)
    if "social" in by_group:
        social = sum(ev.logit or 0.0 for ev in e.events if ev.kind == "social")
        assert by_group["social"].attributed_logit == pytest.approx(social, abs=1e-5)
    if "device" in by_group:
        assert by_group["device"].attributed_logit is None
    assert {ev.kind for ev in e.events} >= {"social"}


def test_a_click_on_a_search_result_is_search_activity(dataset: blm.Dataset) -> None:
    """A view from the search source (the simulator's clicks on search results) is search
    activity, as the search is; the user's own view is history."""
    seqs = dataset.sequences()
    clicks = np.flatnonzero(seqs.sources == SEARCH_SOURCE)
    plain = np.flatnonzero((seqs.items > 0) & (seqs.sources == 1))
    assert len(clicks) > 0
    assert len(plain) > 0
    assert set(event_kinds(seqs, clicks)) == {"search"}
    assert set(event_kinds(seqs, plain)) == {"history"}


def test_integrated_gradients_count_a_search_results_source_as_search(art: blm.Artifact) -> None:
    e = explain(art.model, user_row(art), target=3, method="ig")
    by_group = {g.group: g for g in e.groups}
    if "social" not in by_group:  # mlp reads items only
        assert all(set(ev.components) == {"history"} for ev in e.events)
        return
    clicks = [ev for ev in e.events if ev.kind == "search" and ev.item]
    assert clicks
    assert all(ev.components["social"] == 0.0 for ev in clicks)
    assert any(ev.components["search"] != 0.0 for ev in clicks)  # no query: the source
    search = sum(ev.components["search"] for ev in e.events if not ev.followee)
    assert by_group["search"].attributed_logit == pytest.approx(search, abs=1e-5)
    total = sum(ev.logit or 0.0 for ev in e.events)
    assert total == pytest.approx(e.logit - (e.baseline_logit or 0.0), rel=0.02, abs=1e-3)


@pytest.mark.parametrize("method", ["occlusion", "shapley"])
def test_the_group_table_sums_every_event(dataset: blm.Dataset, method: str) -> None:
    """The groups' summed attributions hold every event's: those of a kind the model has no
    group for (social and search, for a model without those groups) count under history,
    as the model reads them."""
    off = ["model.features.social=false", "model.features.search=false"]
    overrides = [*TINY["sasrec"], *off, "train.epochs=1", "train.threads=1"]
    art = blm.train(dataset, "sasrec", overrides=overrides, progress=False, defaults=False)
    e = explain(art.model, user_row(art), target=3, method=method)
    attributed = {g.group: g.attributed_logit for g in e.groups}
    assert "social" not in attributed
    assert "search" not in attributed
    assert {"social", "search"} <= {ev.kind for ev in e.events}
    events = sum(ev.logit or 0.0 for ev in e.events)
    assert attributed["history"] == pytest.approx(events, abs=1e-5)


def test_a_data_set_from_before_the_search_source_keeps_its_code_3(dataset: blm.Dataset) -> None:
    """Data sets prepared before "search" was a built-in source gave code 3 to another source
    (or to followees' events): it is no click on a search result there."""
    old = replace(dataset, vocab={**dataset.vocab, "source": ["self", "social", "partner"]})
    tiny = [*TINY["sasrec"], "train.epochs=1", "train.threads=1"]
    art = blm.train(old, "sasrec", overrides=tiny, progress=False, defaults=False)
    model = neural(art.model)
    assert model.module.tokens.search_source == -1
    history = user_row(art)
    e = explain(model, history, target=3)
    partner = [ev for ev in e.events if history.sources[ev.index] == 3]
    assert partner
    assert {ev.kind for ev in partner} == {"history"}
    # with the search switch off, the source still reads as it did
    tokens = model.module.tokens
    tokens.features = replace(tokens.features, search=False)
    codes = torch.from_numpy(history.sources)
    assert torch.equal(tokens.read_sources(codes), codes)
    # told before training, as `train` does: the model never reads code 3 as search
    fresh = SASRec(SASRecConfig(dim=8, layers=1, features=FeatureConfig(search=False)))
    fresh.use_sources(old.vocab["source"])
    fresh.setup(old.sequences())
    assert (fresh.module.tokens.search_source, fresh.module.tokens.search_clicks) == (-1, False)
    assert torch.equal(fresh.module.tokens.read_sources(codes), codes)
    # the same model with the current vocabulary reads code 3 as search again
    assert blm.Artifact(model=model, dataset=dataset).model is model
    assert model.module.tokens.search_source == SEARCH_SOURCE


def test_clicks_on_search_results_make_a_search_group_without_queries() -> None:
    """A log that says which views came from a search but has no search queries."""
    raw = blm.simulate(150, seed=3)
    raw = replace(raw, events=raw.events.filter(pl.col("action") != "search"))
    tiny = [*TINY["sasrec"], "train.epochs=1", "train.threads=1"]
    art = blm.train(blm.preprocess(raw), "sasrec", overrides=tiny, progress=False, defaults=False)
    assert neural(art.model).module.tokens.search_clicks
    history = user_row(art)
    e = explain(art.model, history, target=3, method="ig")
    groups = {g.group: g for g in e.groups}
    clicks = [ev for ev in e.events if history.sources[ev.index] == SEARCH_SOURCE]
    assert clicks
    assert {ev.kind for ev in clicks} == {"search"}
    search = sum(ev.components["search"] for ev in e.events)
    assert groups["search"].attributed_logit == pytest.approx(search, abs=1e-5)
    assert search != 0.0


def test_a_model_without_the_social_group_reports_none(dataset: blm.Dataset) -> None:
    """With social off the source table still reads the clicks on search results (search
    activity): no "social" row comes of it."""
    tiny = [*TINY["sasrec"], "train.epochs=1", "train.threads=1", "model.features.social=false"]
    art = blm.train(dataset, "sasrec", overrides=tiny, progress=False, defaults=False)
    history = user_row(art)
    groups_of_model = groups_of(neural(art.model).module, neural(art.model).batch(history))
    assert "social" in groups_of_model  # the table is read, for the clicks
    for method in ("occlusion", "ig"):
        e = explain(art.model, history, target=3, method=method)
        assert [g.group for g in e.groups if g.group in ("social", "search")] == ["search"]
    # without search a click reads as this model reads the user's own views: the zero row,
    # not the self row, which it never reads (nor trains)
    model = neural(art.model)
    tokens = model.module.tokens
    assert (history.sources == SEARCH_SOURCE).any()
    assert tokens.source.weight[SELF_SOURCE].norm() > 0
    full = target_of(model.score(history)[0], 3)
    d_logit, d_prob = ablate_groups(model, history, Target.item(3))["search"]
    features = tokens.features
    tokens.features = replace(features, search=False)
    try:
        logit, prob = target_of(model.score(history)[0], 3)
    finally:
        tokens.features = features
    assert d_logit == pytest.approx(full[0] - logit, abs=1e-4)
    assert d_prob == pytest.approx(full[1] - prob, abs=1e-6)


def test_the_view_says_where_a_view_came_from(art: blm.Artifact) -> None:
    seqs = art.dataset.sequences()
    click, social = seqs.sources == SEARCH_SOURCE, seqs.sources == SOCIAL_SOURCE
    window = int(neural(art.model).config.max_len)
    row = next(
        r
        for r in range(len(seqs))
        if click[max(seqs.offsets[r], seqs.offsets[r + 1] - window) : seqs.offsets[r + 1]].any()
        and social[max(seqs.offsets[r], seqs.offsets[r + 1] - window) : seqs.offsets[r + 1]].any()
    )
    e = explain(art.model, seqs.row(row), target=3)
    con = Console(file=io.StringIO(), width=200)
    print_explanation(con, "u1", labelled_explanation(art, e))
    out = con.file.getvalue()  # type: ignore[attr-defined]
    # a click on a search result (mlp reads items only: to it the click is history)
    assert ("view (search)" in out) == (art.model.name != "mlp")
    assert "view (social)" in out
    assert "search (search)" not in out


def test_attention_read_out(art: blm.Artifact) -> None:
    model, history = art.model, user_row(art)
    assert isinstance(model, NeuralRecommender)
    if model.name == "mlp":
        with pytest.raises(ValueError, match="no attention"):
            explain(model, history, method="attention")
        return
    e = explain(model, history, method="attention")
    weights = np.array([ev.attention for ev in e.events])
    assert e.note
    assert "diagnostic" in e.note
    assert all(ev.logit is None for ev in e.events)
    assert np.isfinite(weights).all()
    assert len(weights) == 20
    if model.name == "sasrec":  # softmax over the events the last position sees
        assert weights.sum() == pytest.approx(1.0, abs=1e-5)
        assert (weights >= 0).all()
    else:  # HSTU: SiLU gates divided by the number of visible events
        assert (weights >= -0.3 / 20).all()
    assert np.allclose(attention(model, history), weights)
    if model.name != "sasrec":  # HSTU's forward and attention_weights share one function
        return
    # independently of the read-out: softmax weights times V are the block's SDPA output
    block = last_layer(model)
    assert isinstance(block, Block)
    captured: list[tuple[torch.Tensor, ...]] = []
    handle = block.register_forward_pre_hook(lambda _, args: captured.append(args))
    try:
        model.score(history)
    finally:
        handle.remove()
    x, allowed = captured[-1]
    b, t, _ = x.shape
    with torch.no_grad():
        q, k, v = (
            z.view(b, t, block.heads, -1).transpose(1, 2)
            for z in block.qkv(block.norm1(x)).chunk(3, dim=-1)
        )
        # a batch without padding passes no mask: plain causal attention
        expected = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, allowed, is_causal=allowed is None
        )
        got = block.attention_weights(x, allowed) @ v
    assert torch.allclose(got, expected, atol=1e-5)


def test_randomised_weights_give_different_attributions(art: blm.Artifact) -> None:
    model, history = art.model, user_row(art)
    assert isinstance(model, NeuralRecommender)
    trained = explain(model, history, target=9, method="ig")
    state = {k: v.clone() for k, v in model.module.state_dict().items()}
    try:
        torch.manual_seed(1)
        for p in model.module.parameters():
            torch.nn.init.normal_(p, std=0.5)
        random = explain(model, history, target=9, method="ig")
    finally:
        model.module.load_state_dict(state)
    a = np.array([ev.logit for ev in trained.events])
    b = np.array([ev.logit for ev in random.events])
    assert not np.allclose(a, b, atol=1e-3)
    # not just rescaled: the directions of the two attribution vectors differ
    assert np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)) > 0.1


def test_without_target_events_explains_the_rest_of_the_timeline(art: blm.Artifact) -> None:
    model, history = art.model, user_row(art)
    fol = history.is_followee_event()
    last = int(np.flatnonzero(~fol)[-1])
    item = int(history.items[last])  # an item of the user's own events: at least one set aside
    on_target = (history.items == item) & ~fol
    rest = history.take_events(~on_target)
    for method in ("occlusion", "ig"):
        e = explain(model, history, item, method, steps=8, without_target_events=True)
        plain = explain(model, rest, item, method, steps=8)
        assert [ev.index for ev in e.set_aside] == np.flatnonzero(on_target).tolist()
        assert {ev.item for ev in e.set_aside} == {item}
        assert [ev.event_id for ev in e.set_aside] == history.event_ids[on_target].tolist()
        assert [ev.action for ev in e.set_aside] == history.actions[on_target].tolist()
        assert [ev.timestamp for ev in e.set_aside] == history.timestamps[on_target].tolist()
        kinds = event_kinds(history, np.flatnonzero(on_target))
        assert [ev.kind for ev in e.set_aside] == kinds
        assert all(
            ev.logit is None and ev.probability is None and not ev.components and not ev.followee
            for ev in e.set_aside
        )
        assert e.logit == pytest.approx(plain.logit, abs=1e-5)
        assert e.unread == plain.unread
        kept = np.flatnonzero(~on_target)
        # the same numbers, each event named by its position in the whole timeline
        assert [ev.index for ev in e.events] == [int(kept[ev.index]) for ev in plain.events]
        assert [ev.event_id for ev in e.events] == [ev.event_id for ev in plain.events]
        assert [ev.logit for ev in e.events] == pytest.approx([ev.logit for ev in plain.events])
        assert not any(history.items[ev.index] == item and not fol[ev.index] for ev in e.events)
        assert len(e.events) == min(20, len(rest.items))  # older events refill the window
    assert explain(model, history, item).set_aside == ()
    unseen = int(np.setdiff1d(np.arange(1, model.n_items + 1), history.items)[0])
    assert explain(model, history, unseen, without_target_events=True).set_aside == ()
    with pytest.raises(ValueError, match="item target"):
        explain(model, history, Target.action(1), without_target_events=True)
    only = history.take_events(on_target)
    with pytest.raises(ValueError, match="nothing is left"):
        explain(model, only, item, without_target_events=True)


def test_without_target_events_keeps_followees_events_on_the_item(art: blm.Artifact) -> None:
    history = user_row(art)
    items, counts = np.unique(history.items[history.items > 0], return_counts=True)
    item = int(items[counts.argmax()])  # an item with several events: some are set aside
    on_item = np.flatnonzero(history.items == item)
    assert len(on_item) >= 2
    who = np.zeros(len(history.items), dtype=np.int64)
    who[on_item[-1]] = 7  # the latest event on the item is a followee's (user 7), not the user's
    feed = replace(history, extra={**history.extra, FOLLOWEE: who})
    e = explain(art.model, feed, item, without_target_events=True)
    assert [ev.index for ev in e.set_aside] == on_item[:-1].tolist()
    kept = [ev for ev in e.events if ev.index == on_item[-1]]
    assert len(kept) == 1
    assert kept[0].followee == 7


def test_explanation_to_dict_is_json(art: blm.Artifact) -> None:
    e = explain(art.model, user_row(art), method="ig", steps=8)
    data = json.loads(json.dumps(e.to_dict()))
    assert data["method"] == "integrated_gradients"
    assert data["target"]["kind"] == "item"
    assert len(data["events"]) == len(e.events)
    assert {"group", "ablation_logit", "attributed_logit"} <= set(data["groups"][0])


def test_bad_inputs_raise_clear_errors(art: blm.Artifact, dataset: blm.Dataset) -> None:
    history = user_row(art)
    with pytest.raises(ValueError, match="unknown method"):
        explain(art.model, history, method="shap")
    with pytest.raises(ValueError, match="empty"):
        explain(art.model, history.take_events(np.zeros(len(history.items), dtype=bool)))
    with pytest.raises(ValueError, match="outside"):
        explain(art.model, history, target=10**6)
    with pytest.raises(ValueError, match="one timeline"):
        explain(art.model, dataset.sequences().select(np.array([0, 1])))
    pop = blm.train(dataset, "pop", progress=False).model
    with pytest.raises(ValueError, match="neural"):
        explain(pop, history)
    # an item id above the catalogue would read as "unknown" and be credited all the same
    outside = replace(history, items=np.where(history.items > 0, art.model.n_items + 7, 0))
    with pytest.raises(ValueError, match="outside the model's catalogue"):
        explain(art.model, outside)
    with pytest.raises(ValueError, match="outside the model's catalogue"):
        blm.influence(art.model, outside, blm.Event(item=1, action=1))


def test_trained_sasrec_takes_the_running_sums(
    art: blm.Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trained model's occlusions take the first block's running sums (their fallback is
    for attention far more peaked than training makes it), and equal re-scoring."""
    if art.model.name != "sasrec":
        pytest.skip("the running sums with a fallback are SASRec's")
    from behaviorlm.models import sasrec, sasrec_deletions

    taken: list[bool] = []

    def spy(*args: object) -> torch.Tensor | None:
        out = sasrec_deletions.first_block_without(*args)  # type: ignore[arg-type]
        taken.append(out is not None)
        return out

    monkeypatch.setattr(sasrec, "first_block_without", spy)
    model = art.model
    assert isinstance(model, NeuralRecommender)
    seqs = art.dataset.sequences()
    for row in np.flatnonzero(seqs.lengths >= 10)[:20]:
        history = seqs.row(int(row))
        e = explain(model, history, method="occlusion")
        worst = max(e.events, key=lambda ev: abs(ev.logit or 0.0))
        keep = np.arange(len(history.items)) != worst.index
        logit, _ = target_of(model.score(history.take_events(keep))[0], e.target.id)
        full, _ = target_of(model.score(history)[0], e.target.id)
        assert worst.logit == pytest.approx(full - logit, abs=1e-4)
    assert taken == [True] * 20


def test_groups_with_one_value_in_the_data_are_marked(tmp_path: Path, dataset: blm.Dataset) -> None:
    """Views only, no follow graph: every token has the same action and source component,
    whose ablation removes a constant; the output says so instead of calling it social."""
    rows = [f"u{u},i{(u * 3 + k) % 9},{1000 * k}" for u in range(15) for k in range(6)]
    (tmp_path / "log.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    ds = blm.preprocess(blm.read(tmp_path / "log.csv"))
    tiny = ["model.dim=8", "model.heads=1", "train.epochs=1", "train.schedule=epochs"]
    plain = blm.train(ds, "sasrec", overrides=tiny, progress=False)
    e = blm.explain_user(plain, "u1")
    flags = {g.group: g.single_value for g in e.groups}
    assert (flags["social"], flags["actions"], flags["history"]) == (True, True, False)
    assert e.to_dict()["groups"][0]["single_value"] is False
    con = Console(file=io.StringIO(), width=160)
    print_explanation(con, "u1", labelled_explanation(plain, e))
    assert "one value in the training data" in con.file.getvalue()  # type: ignore[attr-defined]
    # one action whose code is not 1 (every event a rating): marked too
    rated = SASRec(SASRecConfig(dim=8, layers=1))
    seqs = Sequences.from_lists([[1, 2, 3]], n_items=3)
    rated.setup(replace(seqs, actions=np.full(3, 5)))
    assert "actions" in single_valued(rated)
    # the simulator has several actions, sources, places and devices: nothing is marked
    sim = SASRec(SASRecConfig(dim=8, layers=1))
    sim.setup(dataset.sequences())
    assert single_valued(sim) == frozenset()
