"""Followees' activity in the timeline (``split.followee_actions``): data, split, training, use."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

import behaviorlm as blm
from behaviorlm.config import from_dict
from behaviorlm.data.feed import followee_feed, followee_source, merge_feed, split_with_feed
from behaviorlm.data.preprocess import preprocess
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.data.raw import RawData
from behaviorlm.data.split import leave_one_out, temporal_split
from behaviorlm.explain import explain, labelled_explanation, reaching_event
from behaviorlm.explain.groups import ablate_groups, event_kinds
from behaviorlm.explain.target import Target, target_scores
from behaviorlm.models.batch import FeatureSizes, build_training_batch
from behaviorlm.models.neural import FeatureConfig
from behaviorlm.models.sasrec import SASRec, SASRecConfig
from behaviorlm.schema import FOLLOWEE, SEARCH_SOURCE, Sequences


def shop() -> blm.Dataset:
    """a shares i1 at 10 and i2 at 30; b follows a since 20, c follows a (no date); a follows b.

    b: views at 5, 25, 30, 35, 40, shares at 50; c: views at 1, 2, 60, 70; a: views at 3, 4, 55,
    56, 57 (its held-out targets are views: its shares are training events, which feeds read).
    """
    rows = [
        ("a", "i1", 10, "share"),
        ("a", "i2", 30, "share"),
        ("a", "i3", 3, "view"),
        ("a", "i4", 4, "view"),
        ("a", "i5", 55, "view"),
        ("a", "i3", 56, "view"),
        ("a", "i4", 57, "view"),
        ("b", "i5", 5, "view"),
        ("b", "i6", 25, "view"),
        ("b", "i10", 30, "view"),  # at the time of a's share of i2
        ("b", "i7", 35, "view"),
        ("b", "i8", 40, "view"),
        ("b", "i9", 50, "share"),
        ("c", "i3", 1, "view"),
        ("c", "i4", 2, "view"),
        ("c", "i6", 60, "view"),
        ("c", "i7", 70, "view"),
    ]
    events = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
            "action": [r[3] for r in rows],
        }
    )
    follows = pl.DataFrame(
        {"follower_id": ["b", "c", "a"], "followee_id": ["a", "a", "b"], "since": [20, None, 0]}
    )
    return preprocess(RawData(events=events, follows=follows))


def user(ds: blm.Dataset, name: str) -> int:
    return int(ds.user_index([name])[0])


def items_of(ds: blm.Dataset, seqs: Sequences) -> list[str]:
    ids = ds.items["item_id"].to_list()
    return [ids[i - 1] for i in seqs.items]


def test_feed_holds_followees_events_of_the_actions_since_the_follow() -> None:
    ds = shop()
    feed = followee_feed(ds, ["share"])
    b, c, a = user(ds, "b"), user(ds, "c"), user(ds, "a")
    assert items_of(ds, feed.row(b - 1)) == ["i2"]  # i1 (at 10) came before b followed a (20)
    assert items_of(ds, feed.row(c - 1)) == ["i1", "i2"]
    assert items_of(ds, feed.row(a - 1)) == ["i9"]
    row = feed.row(c - 1)
    assert row.timestamps.tolist() == [10, 30]
    assert (row.sources == followee_source(ds)).all()
    assert (row.devices == 0).all()
    assert (row.locations == 0).all()
    assert row.extra[FOLLOWEE].tolist() == [a, a]
    # event ids are a's very events in the data set's event table
    assert (ds.events["user"].to_numpy()[row.event_ids] == a).all()
    assert items_of(ds, followee_feed(ds, ["view"]).row(a - 1)) == ["i5", "i6", "i10", "i7", "i8"]


def test_no_feed_where_the_data_has_none() -> None:
    ds = shop()
    assert len(followee_feed(ds, ["purchase"]).items) == 0  # an action the data lacks
    alone = preprocess(RawData(events=_events_of(ds)))
    assert len(followee_feed(alone, ["share"]).items) == 0  # no follow graph


def _events_of(ds: blm.Dataset) -> pl.DataFrame:
    users = ds.users["user_id"].to_list()
    items = ds.items["item_id"].to_list()
    ev = ds.events
    return pl.DataFrame(
        {
            "user_id": [users[u - 1] for u in ev["user"]],
            "item_id": [items[i - 1] for i in ev["item"]],
            "timestamp": ev["timestamp"],
        }
    )


def test_merge_orders_by_time_cuts_and_keeps_extras() -> None:
    ds = shop()
    feed = followee_feed(ds, ["share"])
    seqs = ds.sequences()
    c = user(ds, "c")
    rows = np.array([c - 1, c - 1])
    merged = merge_feed(seqs.select(rows), feed, until=np.array([30, 30]), inclusive=True)
    assert items_of(ds, merged.row(0)) == ["i3", "i4", "i1", "i2", "i6", "i7"]
    assert merged.extra[FOLLOWEE][: merged.lengths[0]].tolist() == [0, 0, 1, 1, 0, 0]
    assert merged.extra["query_words"].shape[0] == len(merged.items)
    cut = merge_feed(seqs.select(rows), feed, until=np.array([30, 5]))
    assert items_of(ds, cut.row(0)) == ["i3", "i4", "i1", "i6", "i7"]  # before 30 only
    assert items_of(ds, cut.row(1)) == ["i3", "i4", "i6", "i7"]
    # the users' own events are exactly the input, in order
    own = merged.take_events(~merged.is_followee_event())
    assert own.items.tolist() == seqs.select(rows).items.tolist()


def test_a_followee_event_comes_after_own_events_of_the_same_time() -> None:
    ds = shop()
    split = split_with_feed(ds, leave_one_out(ds), ["share"])
    row = split.train.row(user(ds, "b") - 1)  # b's training row: views up to 35
    assert items_of(ds, row) == ["i5", "i6", "i10", "i2", "i7"]
    assert row.is_followee_event().tolist() == [False, False, False, True, False]


def test_split_takes_no_followee_event_from_after_a_target() -> None:
    ds = blm.preprocess(blm.simulate(200, seed=3))
    plain = leave_one_out(ds)
    split = split_with_feed(ds, plain, ["share", "like"])
    times = ds.events["timestamp"].to_numpy()
    for part, base in ((split.valid, plain.valid), (split.test, plain.test)):
        h = part.histories
        theirs = h.is_followee_event()
        assert theirs.any()
        target_time = times[part.target_event_ids][h.row_of_event]
        assert (h.timestamps[theirs] < target_time[theirs]).all()
        own = h.take_events(~theirs)
        assert own.event_ids.tolist() == base.histories.event_ids.tolist()
    train = split.train
    theirs = train.is_followee_event()
    last = plain.train.timestamps[np.maximum(plain.train.offsets[1:] - 1, 0)]
    assert (train.timestamps[theirs] <= last[train.row_of_event[theirs]]).all()
    assert split.info["followee_events"]["train"] == int(theirs.sum())


def test_no_held_out_target_is_an_input_of_another_timeline() -> None:
    ds = blm.preprocess(blm.simulate(200, seed=3))
    plain = leave_one_out(ds)
    # before, a sharer's held-out share was a followee event of their followers' training rows
    assert np.isin(plain.test.target_event_ids, followee_feed(ds, ["share"]).event_ids).any()
    split = split_with_feed(ds, plain, ["share"])
    trained = split.train.event_ids[split.train.is_followee_event()]
    held = np.concatenate([plain.valid.target_event_ids, plain.test.target_event_ids])
    assert not np.isin(held, trained).any()
    shown = split.valid.histories.event_ids[split.valid.histories.is_followee_event()]
    assert not np.isin(plain.test.target_event_ids, shown).any()
    assert split.info["followee_events"]["train"] > 0  # the others stay


def test_a_temporal_split_takes_no_followee_event_from_its_cut_off_on() -> None:
    events = pl.DataFrame(
        {
            "user_id": ["b", "b", "b", "b", "a", "a"],
            "item_id": ["i1", "i2", "i3", "i4", "s1", "s2"],
            "timestamp": [10, 20, 55, 60, 52, 58],
            "action": ["view", "view", "view", "purchase", "share", "share"],
        }
    )
    follows = pl.DataFrame({"follower_id": ["b"], "followee_id": ["a"], "since": [0]})
    ds = preprocess(RawData(events=events, follows=follows))
    cut = temporal_split(ds, valid_start=15, test_start=50, target_actions=["purchase", "view"])
    split = split_with_feed(ds, cut, ["share"])
    # b's test history: b's own events before 50, and no share from 50 on (the one at 52
    # came in before, with b's own views between 50 and the first target left out)
    assert split.test.histories.timestamps.tolist() == [10, 20]
    assert split.valid.histories.timestamps.tolist() == [10]


def test_followee_events_are_never_training_targets() -> None:
    ds = shop()
    split = split_with_feed(ds, leave_one_out(ds), ["share"])
    train = split.train
    sizes = FeatureSizes.of(train)
    _, items, actions = build_training_batch(train, 50, sizes)
    targets = sorted(int(i) for i in items[items > 0])
    theirs = train.is_followee_event()
    own_targets = sorted(  # every own event after a row's first event, and nothing else
        int(train.items[e])
        for e in range(len(train.items))
        if not theirs[e] and e != train.offsets[train.row_of_event[e]]
    )
    assert theirs.any()
    assert targets == own_targets
    assert int((actions > 0).sum()) == len(own_targets)


def test_trained_model_reads_the_feed_everywhere() -> None:
    ds = blm.preprocess(blm.simulate(120, seed=0))
    art = blm.train(
        ds,
        "sasrec",
        overrides=[
            'split.followee_actions=["share"]',
            "model.dim=16",
            "train.epochs=1",
            "train.time_budget_s=0",
            "train.schedule=epochs",
        ],
        progress=False,
    )
    assert art.followee_actions == ("share",)
    timelines = art.timelines()
    theirs = timelines.is_followee_event()
    assert theirs.any()
    assert (timelines.sources[theirs] == followee_source(ds)).all()
    # a user whose last event is a followee's share: the shared item is still recommended
    rows = np.flatnonzero(theirs[timelines.offsets[1:][timelines.lengths > 0] - 1])
    row = timelines.select(np.flatnonzero(timelines.lengths > 0)[rows[:1]])
    shared = int(row.items[-1])
    own = set(row.items[~row.is_followee_event()].tolist())
    top = blm.recommend(art.model, row, k=ds.n_items).items[0]
    assert (shared in own) or (shared in top.tolist())
    # explanations name followee events as social
    e = explain(art.model, row, None, "occlusion")
    kinds = event_kinds(row, np.arange(len(row.items)))
    assert [ev.kind for ev in e.events] == [kinds[ev.index] for ev in e.events]
    assert "social" in kinds
    who = row.extra[FOLLOWEE]
    assert [ev.followee for ev in e.events] == [int(who[ev.index]) for ev in e.events]
    labelled = labelled_explanation(art, e)["events"][-1]  # the last event is a followee's
    users = ds.users["user_id"].to_list()
    assert labelled["followee_id"] == users[int(who[-1]) - 1]
    assert labelled["kind"] == "social"
    # reach inserts the share itself, weighed by the sharer's exposure relative to the pooled
    # rate: above 1 for the sharer whose shares are seen most
    exposure = blm.estimate_exposure(ds, "share")
    assert exposure is not None
    followees = np.unique(ds.follows["followee"].to_numpy())
    top = int(followees[np.argmax(exposure.rates(followees))])
    assert exposure.of(top) > exposure.pooled
    sharer = str(ds.users["user_id"][top - 1])
    result = blm.influence_user(art, sharer, "i3", "share")
    assert result.reach is not None
    assert reaching_event(art, "share").followee
    expected = exposure.of(int(ds.user_index([sharer])[0])) / exposure.pooled
    assert result.reach.exposure == pytest.approx(expected, rel=1e-5)
    ranking = blm.rank_influencers(art, "i3", k=5)
    assert len(ranking.users) == 5
    assert ranking.exposure is not None
    assert ranking.exposure.tolist() == pytest.approx(
        (exposure.rates(ranking.users) / exposure.pooled).tolist(), rel=1e-5
    )
    # evaluation rebuilds the same split, feed included
    assert 0.0 <= blm.evaluate_artifact(art, ks=(10,)).metrics["NDCG"][10] <= 1.0


def test_a_model_without_the_feed_reads_own_events_only() -> None:
    ds = blm.preprocess(blm.simulate(60, seed=0))
    art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    assert art.followee_actions == ()
    assert not art.timelines().is_followee_event().any()


@pytest.mark.parametrize("actions", [["share"], []])
def test_make_split_reads_followee_actions_from_the_config(actions: list[str]) -> None:

    ds = shop()
    config = from_dict(SplitConfig, {"followee_actions": actions})
    split = make_split(ds, config)
    assert split.train.is_followee_event().any() == bool(actions)


def test_a_followee_action_the_data_does_not_know_is_refused() -> None:
    """A misspelt action (``shares``) is refused by name; a built-in one without events
    (``like`` in this shop) adds no followee event."""
    from behaviorlm.train.run import fit_to_data, resolve_run_config

    ds = shop()
    for model in ("sasrec", "markov"):  # whether or not the model reads the feed
        run = resolve_run_config(model, overrides=["split.followee_actions=['share', 'shares']"])
        with pytest.raises(blm.DataError, match=r"followee_actions names 'shares'.*share"):
            fit_to_data(run, ds)
    assert "like" not in ds.event_actions()
    split = make_split(ds, SplitConfig(followee_actions=("like",)))
    assert not split.train.is_followee_event().any()


def untrained_with_feed(features: FeatureConfig | None = None) -> tuple[SASRec, Sequences]:
    """An untrained SASRec over a small simulation with followees' shares, and the test
    history with the most followee events."""
    ds = blm.preprocess(blm.simulate(80, seed=2))
    split = split_with_feed(ds, leave_one_out(ds), ["share"])
    model = SASRec(SASRecConfig(dim=8, heads=2, layers=1, features=features or FeatureConfig()))
    model.setup(split.train, seed=0)
    model.module.eval()
    h = split.test.histories
    most = int(np.argmax(np.bincount(h.row_of_event[h.is_followee_event()])))
    return model, h.select(np.array([most]))


TARGET = Target.item(3)


def test_social_ablation_deletes_the_followee_events() -> None:
    """And keeps the source of the user's clicks on search results, which is search
    activity: the same as re-scoring the user's own events with the social switch off."""
    model, row = untrained_with_feed()
    module, target, tokens = model.module, TARGET, model.module.tokens
    own = row.take_events(~row.is_followee_event())
    assert (own.sources[-model.config.max_len :] == SEARCH_SOURCE).any()
    ablated = ablate_groups(model, row, target)
    features = tokens.features
    with torch.no_grad():
        full, _ = target_scores(module, model.batch(row), target)
        tokens.features = replace(features, social=False)
        try:
            without, _ = target_scores(module, model.batch(own), target)
        finally:
            tokens.features = features
    assert ablated["social"][0] == pytest.approx(float(full[0] - without[0]), abs=1e-5)


def test_history_ablation_keeps_the_followees_items() -> None:
    model, row = untrained_with_feed()
    module, target = model.module, TARGET
    theirs = row.is_followee_event()
    # item 0 is the padding embedding: the same as zeroing the item component of own events
    own_items_gone = replace(row, items=np.where(theirs, row.items, 0))
    with torch.no_grad():
        full, _ = target_scores(module, model.batch(row), target)
        without, _ = target_scores(module, model.batch(own_items_gone), target)
    ablated = ablate_groups(model, row, target)
    assert ablated["history"][0] == pytest.approx(float(full[0] - without[0]), abs=1e-5)


def test_integrated_gradients_count_followee_events_as_social() -> None:
    model, row = untrained_with_feed(FeatureConfig(social=False))
    e = explain(model, row, None, "ig", steps=8)
    groups = {g.group: g for g in e.groups}
    theirs = row.is_followee_event()
    followee_total = sum(ev.logit or 0.0 for ev in e.events if theirs[ev.index])
    # no source component here: social is exactly the followees' events, whole
    assert groups["social"].attributed_logit == pytest.approx(followee_total, abs=1e-5)
    by_groups = sum(g.attributed_logit or 0.0 for g in e.groups)
    assert by_groups == pytest.approx(sum(ev.logit or 0.0 for ev in e.events), abs=1e-4)


def test_a_hypothetical_followee_event_has_no_context_of_the_user() -> None:
    from behaviorlm.explain import Event, append_event

    rows = replace(
        Sequences.from_lists([[1, 2]], n_items=5),
        devices=np.array([2, 3]),
        locations=np.array([4, 5]),
    )
    own = append_event(rows, Event(item=5, action=1))
    theirs = append_event(rows, Event(item=5, action=1, source=3, followee=7))
    assert (own.devices[-1], own.locations[-1]) == (3, 5)
    assert (theirs.devices[-1], theirs.locations[-1]) == (0, 0)
    assert theirs.extra[FOLLOWEE].tolist() == [0, 0, 7]
    assert theirs.is_followee_event().tolist() == [False, False, True]


def test_rows_with_only_followee_events_to_predict_are_not_trained_on() -> None:
    from behaviorlm.train.batches import TrainingSet

    rows = replace(
        Sequences.from_lists([[1, 2, 3], [4, 5, 6]], n_items=6),
        extra={FOLLOWEE: np.array([0, 9, 9, 0, 0, 9])},  # row 0: only followees' after the first
    )
    data = TrainingSet.build(rows, max_len=5, sizes=FeatureSizes.of(rows))
    assert len(data) == 1
    assert data.target_items[0].tolist()[-2:] == [5, 0]  # row 1: 5 is a target, 6 is context


def test_a_hand_built_follows_table_reads_as_a_file_of_it_would() -> None:
    """since as datetimes or text is read in seconds, as the events' times are; in
    milliseconds it is refused, as a file reader refuses it."""
    import datetime as dt

    from behaviorlm.data.errors import DataError
    from behaviorlm.data.raw import RawData

    day = dt.datetime(2024, 1, 5)
    events = pl.DataFrame(
        {
            "user_id": ["a", "a", "b", "b"],
            "item_id": ["1", "2", "3", "4"],
            "timestamp": [day, day + dt.timedelta(days=1), day, day + dt.timedelta(hours=1)],
            "action": ["view", "view", "share", "share"],
        }
    )
    first = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())
    for since in ([dt.datetime(2024, 1, 1)], ["2024-01-01"], [first]):
        follows = pl.DataFrame({"follower_id": ["a"], "followee_id": ["b"], "since": since})
        ds = preprocess(RawData(events=events, follows=follows))
        assert ds.follows["since"].to_list() == [first], since
        assert len(followee_feed(ds, ["share"]).items) == 2, since
    follows = pl.DataFrame({"follower_id": ["a"], "followee_id": ["b"], "since": [first * 1000]})
    with pytest.raises(DataError, match="milliseconds"):
        preprocess(RawData(events=events, follows=follows))
