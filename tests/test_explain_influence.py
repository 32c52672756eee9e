"""Influence of hypothetical events, social reach, and the explain / influence commands."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

import behaviorlm as blm
from behaviorlm.cli import main
from behaviorlm.explain import Event, append_event, influence, rank_by_reach, social_reach
from behaviorlm.explain.artifacts import labelled_influence, reaching_event
from behaviorlm.explain.influence import log_softmax
from behaviorlm.explain.reach import follower_uplift
from behaviorlm.explain.view import print_explanation

OVERRIDES = ["model.dim=16", "model.layers=1", "model.heads=2", "model.max_len=20"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[blm.Artifact, Path]:
    ds = blm.preprocess(blm.simulate(150, seed=3))
    out = tmp_path_factory.mktemp("explain") / "sasrec"
    art = blm.train(
        ds,
        "sasrec",
        overrides=[*OVERRIDES, "train.epochs=3", "train.threads=1"],
        out_dir=out,
        progress=False,
        defaults=False,  # the config classes' defaults: no followees' shares in the timelines
    )
    return art, out


def test_append_event_puts_the_event_last_in_every_row() -> None:
    s = blm.Sequences.from_lists([[1, 2], [], [3]], n_items=5)
    after = append_event(s, Event(item=5, action=8, source=2, timestamp=9))
    assert after.lengths.tolist() == [3, 1, 2]
    assert [after.row(r).items.tolist() for r in range(3)] == [[1, 2, 5], [5], [3, 5]]
    assert after.sources[after.offsets[1:] - 1].tolist() == [2, 2, 2]
    assert after.actions[after.offsets[1:] - 1].tolist() == [8, 8, 8]
    assert after.timestamps[after.offsets[1:] - 1].tolist() == [9, 9, 9]


def test_the_appended_event_takes_the_context_of_the_users_own_last_event() -> None:
    from behaviorlm.schema import FOLLOWEE

    s = blm.Sequences.from_lists([[1, 2, 3], [4], [2]], n_items=5)
    # row 0 ends with a followee's event (no device or location), row 2 has only one
    s = blm.Sequences(
        offsets=s.offsets,
        users=s.users,
        n_items=s.n_items,
        items=s.items,
        actions=s.actions,
        timestamps=np.array([1, 2, 3, 4, 5]),
        event_ids=s.event_ids,
        values=s.values,
        devices=np.array([6, 7, 0, 8, 0]),
        locations=np.array([9, 10, 0, 11, 0]),
        sources=s.sources,
        extra={FOLLOWEE: np.array([0, 0, 42, 0, 42])},
    )
    after = append_event(s, Event(item=5, action=1))
    last = after.offsets[1:] - 1
    assert after.devices[last].tolist() == [7, 8, 0]  # row 0: its own last, not the followee's
    assert after.locations[last].tolist() == [10, 11, 0]
    assert after.timestamps[last].tolist() == [3, 4, 5]  # the time of the latest event, any
    theirs = append_event(s, Event(item=5, action=1, source=3, followee=42))
    assert theirs.devices[theirs.offsets[1:] - 1].tolist() == [0, 0, 0]


def test_influence_changes_the_distribution(saved: tuple[blm.Artifact, Path]) -> None:
    art, _ = saved
    history = art.histories(["u1"])
    purchase = art.dataset.action_code("purchase")
    out = influence(art.model, history, Event(item=4, action=purchase), k=10, items=[7])
    assert out.kl > 0
    assert [c.item for c in out.items] == [4, 7]
    before = log_softmax(art.model.score(history))[0]
    after = log_softmax(art.model.score(append_event(history, out.event)))[0]
    assert out.kl == pytest.approx(float(np.sum(np.exp(after) * (after - before))), rel=1e-6)
    assert out.items[0].change == pytest.approx(float(np.exp(after[3]) - np.exp(before[3])))
    assert set(out.entering) == set(out.after) - set(out.before)
    assert set(out.leaving) == set(out.before) - set(out.after)
    # the purchased item is seen after the event: in neither list, so it never "leaves"
    assert 4 not in out.before + out.after
    plain = blm.recommend(art.model, history, k=11).items[0].tolist()
    assert list(out.before) == [i for i in plain if i != 4][:10]
    assert json.loads(json.dumps(out.to_dict()))["kl"] == pytest.approx(out.kl)
    same = influence(art.model, history, Event(item=4, action=purchase), k=10)
    assert same.kl == pytest.approx(out.kl)
    # ids as the Artifact API gives them (numpy integers) write as JSON too
    item = art.item_ids(["i4"])[0]
    numpy_ids = influence(art.model, history, Event(item=item, action=purchase), items=[item])
    assert json.loads(json.dumps(numpy_ids.to_dict()))["event"]["item"] == int(item)
    reach = blm.social_reach(art.model, history, item, action=purchase)
    assert json.loads(json.dumps(reach.to_dict()))["item"] == int(item)
    with pytest.raises(TypeError):  # an id is a whole number
        Event(item=4.5, action=purchase)  # type: ignore[arg-type]
    # the event took the time of the timeline's last event, and says so
    assert out.event.timestamp == int(history.timestamps[-1]) > 0
    assert out.to_dict()["event"]["timestamp"] == out.event.timestamp


def test_influence_refuses_codes_below_one(saved: tuple[blm.Artifact, Path]) -> None:
    art, _ = saved
    history = art.histories(["u1"])
    for event in (Event(item=4, action=0), Event(item=4, action=1, source=0)):
        with pytest.raises(ValueError, match="codes start at 1"):
            influence(art.model, history, event)


def test_reach_is_the_sum_of_follower_uplifts(saved: tuple[blm.Artifact, Path]) -> None:
    art, _ = saved
    seqs = art.dataset.sequences()
    follows = art.dataset.follows
    user = int(np.bincount(follows["followee"].to_numpy()).argmax())  # most followed
    followers = follows.filter(follows["followee"] == user)["follower"].to_numpy()
    timelines = seqs.select(followers - 1)
    edges = (follows["follower"].to_numpy(), follows["followee"].to_numpy())
    reach = social_reach(art.model, timelines, item=6, batch_size=7)
    assert reach.exposure is None  # unknown: every follower counted
    assert reach.reach == pytest.approx(float(reach.uplift.sum()), rel=1e-6)
    seen = social_reach(art.model, timelines, item=6, exposure=0.25)
    assert seen.reach == pytest.approx(0.25 * reach.reach, rel=1e-5)
    assert seen.uplift.tolist() == pytest.approx(reach.uplift.tolist(), abs=1e-7)
    with pytest.raises(ValueError, match="exposure"):
        social_reach(art.model, timelines, item=6, exposure=-0.5)
    # a relative exposure (a model that reads followees' acts) may exceed 1
    above = social_reach(art.model, timelines, item=6, exposure=1.5)
    assert above.reach == pytest.approx(1.5 * reach.reach, rel=1e-5)
    # ... but no follower engages more than once: reach never exceeds the followers
    large = 2.0 / float(np.abs(reach.uplift).max())
    capped = social_reach(art.model, timelines, item=6, exposure=large)
    assert capped.reach <= len(followers)
    assert capped.reach == pytest.approx(
        float(np.clip(large * reach.uplift, -1, 1).sum()), rel=1e-5
    )
    learned = blm.estimate_exposure(art.dataset, "share")
    assert learned is not None
    everyone_large = np.full(art.dataset.n_users + 1, large, dtype=np.float32)
    edges_of_user = rank_by_reach(
        art.model,
        seqs,
        *edges,
        item=6,
        users=np.array([user]),
        exposure=dataclasses.replace(learned, rate=everyone_large),
    )
    assert edges_of_user.reach[0] == pytest.approx(capped.reach, rel=1e-4)
    assert reach.users.tolist() == followers.tolist()
    # one follower re-scored by hand: a social view of the item appended to their timeline
    one = timelines.row(0)
    social = Event(item=6, action=1, source=2)
    before = log_softmax(art.model.score(one))[0, 5]
    after = log_softmax(art.model.score(append_event(one, social)))[0, 5]
    assert reach.uplift[0] == pytest.approx(np.exp(after) - np.exp(before), abs=1e-6)
    assert np.abs(reach.uplift).sum() > 0
    ranking = rank_by_reach(art.model, seqs, *edges, item=6)
    assert np.all(np.diff(ranking.reach) <= 0)
    position = ranking.users.tolist().index(user)
    assert ranking.reach[position] == pytest.approx(reach.reach, rel=1e-4, abs=1e-6)
    assert ranking.followers[position] == len(followers)
    assert ranking.exposure is None
    assert all(row["exposure"] is None for row in ranking.to_dict()["users"])
    exposure = blm.estimate_exposure(art.dataset, "share")
    assert exposure is not None
    weighted = rank_by_reach(art.model, seqs, *edges, item=6, exposure=exposure)
    assert np.all(np.diff(weighted.reach) <= 0)
    assert weighted.exposure is not None
    assert weighted.exposure.tolist() == pytest.approx(exposure.rates(weighted.users).tolist())
    at = weighted.users.tolist().index(user)
    assert weighted.reach[at] == pytest.approx(exposure.of(user) * reach.reach, rel=1e-4, abs=1e-6)
    uplift = follower_uplift(art.model, seqs, item=6)
    assert uplift.shape == (len(seqs),)
    for bad in (-1, 0):  # -1 would wrap around to the last user's figures
        with pytest.raises(ValueError, match=f"user ids start at 1, got {bad}"):
            rank_by_reach(art.model, seqs, *edges, item=6, users=np.array([bad, user]))


def test_reach_says_how_the_act_reaches_followers_and_what_its_exposure_is(
    saved: tuple[blm.Artifact, Path],
) -> None:
    art, _ = saved
    timelines = art.dataset.sequences().select(np.arange(5))
    view = social_reach(art.model, timelines, item=6, exposure=0.25)
    assert (view.followee_event, view.exposure_relative) == (False, False)
    reaching = reaching_event(art, "share")
    codes = {"action": reaching.action, "source": reaching.source}
    act = social_reach(art.model, timelines, 6, followee_event=True, exposure=1.5, **codes)
    assert (act.followee_event, act.exposure_relative) == (True, True)
    # a followee's act is no social view: its codes are named, never guessed
    with pytest.raises(ValueError, match="followee source code"):
        social_reach(art.model, timelines, item=6, followee_event=True)
    with pytest.raises(ValueError, match="followee_source"):
        blm.Event(item=6, action=reaching.action, followee=3)
    unknown = social_reach(art.model, timelines, item=6, followee_event=True, **codes)
    assert (unknown.followee_event, unknown.exposure_relative) == (True, False)
    assert unknown.to_dict()["followee_event"] is True
    assert unknown.to_dict()["exposure_relative"] is False


def test_influence_user_adds_reach_for_shares_only(saved: tuple[blm.Artifact, Path]) -> None:
    art, _ = saved
    shared = blm.influence_user(art, "u1", "i3", "share")
    assert shared.reach is not None
    exposure = blm.estimate_exposure(art.dataset, "share")
    assert exposure is not None
    rate = exposure.of(int(art.dataset.user_index(["u1"])[0]))
    assert 0 < rate < 1
    assert shared.reach.exposure == pytest.approx(rate)
    assert not shared.reach.exposure_relative  # a probability: the model reads no followees
    assert shared.reach.reach == pytest.approx(rate * float(shared.reach.uplift.sum()), rel=1e-5)
    assert blm.influence_user(art, "u1", "i3", "purchase").reach is None
    folded = blm.influence_user(art, "u1", "i3", "SHARE")  # as events read it
    assert folded.reach is not None
    assert folded.reach.reach == pytest.approx(shared.reach.reach, rel=1e-6)
    ranking = blm.rank_influencers(art, "i3", k=5)
    assert len(ranking.users) == 5
    assert ranking.exposure is not None
    assert ranking.exposure.tolist() == pytest.approx(exposure.rates(ranking.users).tolist())
    assert ranking.to_dict()["exposure_relative"] is False
    top = [str(art.dataset.users["user_id"][u - 1]) for u in ranking.users[:2].tolist()]
    twice = blm.rank_influencers(art, "i3", users=[top[0], top[1], top[0]])
    assert len(twice.users) == 2  # a user given twice is ranked once


def test_explain_command(
    saved: tuple[blm.Artifact, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = saved
    for method in ("occlusion", "ig", "attention"):
        assert main(["explain", str(out), "--user", "u1", "--method", method]) == 0
        text = capsys.readouterr().out
        assert "feature groups" in text
        assert "for user u1" in text
        # integrated gradients show their completeness in the logit and in the probability
        check = r"completeness: the events sum to \S+, logit - baseline \S+; in probability"
        assert bool(re.search(check, text)) == (method == "ig")
    assert main(["explain", str(out), "--user", "u1", "--item", "i3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # the same explanation as a table, to a pipe (80 columns): every row whole, nothing cut
    assert main(["explain", str(out), "--user", "u1", "--item", "i3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any("…" in line for line in lines)
    for e in data["events"]:
        cells = (
            str(e["index"]),
            e["title"] or "",
            f"{e['probability']:+.4f}",
            f"{e['logit']:+.3f}",
        )
        assert any(all(c in line for c in cells) for line in lines), cells
    # and on a 64-column terminal: narrowed by its text, every number and date whole
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    con = Console(file=terminal, width=64, force_terminal=True, color_system=None)
    print_explanation(con, "u1", data)
    lines = terminal.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 64
    for e in data["events"]:
        numbers = (f"{e['probability']:+.4f}", f"{e['logit']:+.3f}")
        assert any(all(n in line for n in numbers) for line in lines), numbers
    dates = [line for line in lines if line.startswith("│ ") and line[2:].strip()[:1].isdigit()]
    assert all(re.search(r"│ \d{4}-\d\d-\d\d", line) for line in dates)
    assert data["target"]["item_id"] == "i3"
    assert all("title" in e and "action_name" in e for e in data["events"])
    assert data["set_aside"] == []
    own = [e["item_id"] for e in data["events"] if e["item_id"] and not e["followee_id"]]
    seen = own[-1]  # an item of the user's own events: set aside now
    argv = ["explain", str(out), "--user", "u1", "--item", seen, "--without-target-events"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["set_aside"]
    assert all(e["item_id"] != seen or e["followee_id"] for e in data["events"])
    assert {e["item_id"] for e in data["set_aside"]} == {seen}
    assert all(e["title"] is not None and e["action_name"] for e in data["set_aside"])
    shown, aside = {e["index"] for e in data["events"]}, {e["index"] for e in data["set_aside"]}
    assert not shown & aside
    # explained, set aside and unread events make up the whole timeline, which ends the window
    whole = len(shown) + len(aside) + data["unread"]
    assert max(shown | aside) == whole - 1
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "set aside" in text
    assert "own events on it" in text
    assert f"#{max(aside)}" in text
    assert "nothing set aside" not in text
    # an item the user never acted on: the command says that nothing was set aside
    dataset = blm.Artifact.load(out).dataset
    user = int(dataset.users.filter(pl.col("user_id") == "u1")["user"][0])
    touched = set(dataset.events.filter(pl.col("user") == user)["item"].to_list())
    untouched = dataset.items.filter(~pl.col("item").is_in(list(touched)))["item_id"][0]
    argv = ["explain", str(out), "--user", "u1", "--item", untouched, "--without-target-events"]
    assert main(argv) == 0
    assert f"nothing set aside: user u1 has no events of their own on item {untouched}" in (
        capsys.readouterr().out
    )


def test_influence_command(
    saved: tuple[blm.Artifact, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = saved
    argv = ["influence", str(out), "--user", "u1", "--action", "share", "--item", "i3"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["event"]["action_name"] == "share"
    assert data["reach"]["followers"]
    assert 0 < data["reach"]["exposure"] < 1
    assert data["reach"]["exposure_relative"] is False
    assert data["reach"]["followee_event"] is False
    assert "if seen" in text  # a view of the item: the uplift given that the follower sees it
    seen = f"exposure {data['reach']['exposure']:.4f}, the chance that a follower sees"
    assert f"social reach {data['reach']['reach']:.4f}" in text
    assert seen in text
    # a user nobody follows has no reach to show
    follows = saved[0].dataset.follows
    followed = set(follows["followee"].to_list())
    loner = next(u for u in range(1, saved[0].dataset.n_users + 1) if u not in followed)
    name = saved[0].dataset.users["user_id"][loner - 1]
    assert main(["influence", str(out), "--user", name, "--action", "share", "--item", "i3"]) == 0
    assert f"user {name} has no followers" in capsys.readouterr().out
    # further items, and a follower table cut at -k that says so
    assert main([*argv, "--items", "i4", "i5", "-k", "1", "--json"]) == 0
    named = json.loads(capsys.readouterr().out)["items"]
    assert [c["item_id"] for c in named] == ["i3", "i4", "i5"]
    assert main([*argv, "-k", "1"]) == 0
    shown = len(data["reach"]["followers"])
    assert f"(the 1 largest uplifts of {shown}; -k shows more)" in capsys.readouterr().out
    # a -k past what can be ranked: the label gives the lists' length, not -k
    big = [*argv, "-k", str(saved[0].dataset.n_items + 50), "--no-reach"]
    assert main([*big, "--json"]) == 0
    listed = len(json.loads(capsys.readouterr().out)["before"])
    assert main(big) == 0
    assert f"entering the top {listed}: " in capsys.readouterr().out


def test_influencers_command_ranks_users_by_predicted_reach(
    saved: tuple[blm.Artifact, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    art, out = saved
    assert main(["influencers", str(out), "--item", "i3", "-k", "4"]) == 0
    text = capsys.readouterr().out
    assert "predicted reach" in text
    assert main(["influencers", str(out), "--item", "i3", "-k", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["action"] == "share"
    assert data["exposure_relative"] is False
    assert main(["influencers", str(out), "--item", "i3", "-k", "4", "--action", "LIKE"]) == 0
    assert "with a like (exposure" in capsys.readouterr().out  # the built-in name, as read
    assert "(exposure: the chance that a follower sees the user's act)" in text
    expected = blm.rank_influencers(art, "i3", k=4)
    assert [row["user"] for row in data["users"]] == expected.users.tolist()
    assert [row["reach"] for row in data["users"]] == pytest.approx(expected.reach.tolist())
    names = art.dataset.users["user_id"]
    assert [row["user_id"] for row in data["users"]] == [names[int(u) - 1] for u in expected.users]
    assert all(row["user_id"] in text for row in data["users"])
    # --user ranks only the users named, as users= does in Python
    pick = [names[int(u) - 1] for u in expected.users[:2]][::-1]
    argv = ["influencers", str(out), "--item", "i3", "--json", "--user", pick[0], "--user", pick[1]]
    assert main(argv) == 0
    chosen = json.loads(capsys.readouterr().out)["users"]
    assert sorted(row["user_id"] for row in chosen) == sorted(pick)
    ranked = blm.rank_influencers(art, "i3", users=pick)
    assert [row["user"] for row in chosen] == ranked.users.tolist()
    # more users named than the default 10: every one is listed, unless -k cuts the list
    many = art.dataset.follows["followee"].unique().sort().to_list()[:12]
    twelve = [a for u in many for a in ("--user", names[int(u) - 1])]
    assert main(["influencers", str(out), "--item", "i3", "--json", *twelve]) == 0
    assert len(json.loads(capsys.readouterr().out)["users"]) == 12
    assert main(["influencers", str(out), "--item", "i3", "-k", "5", *twelve]) == 0
    assert "(the 5 largest reaches of the 12 users named; -k shows more)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "ART", "--user", "nobody"], "unknown user id"),
        (["explain", "ART", "--user", "u1", "--item", "nothing"], "unknown item id"),
        (["influence", "ART", "--user", "nobody", "--item", "i3"], "unknown user id"),
        (["influence", "ART", "--user", "u1", "--item", "i3", "--action", "fly"], "fly"),
        (["influencers", "ART", "--item", "nothing"], "unknown item id"),
        (["influencers", "ART", "--item", "i3", "--action", "shrae"], "shrae"),
        (["influencers", "ART", "--item", "i3", "-k", "0"], "k must be at least 1"),
        (["influencers", "ART", "--item", "i3", "--action", "purchase"], "(share, like)"),
        (["influence", "ART", "--user", "u1", "--item", "i3", "--action", "search"], "a search"),
    ],
)
def test_bad_ids_give_one_line_and_exit_2(
    saved: tuple[blm.Artifact, Path],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    _, out = saved
    assert main([str(out) if a == "ART" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err


def test_non_neural_artifact_exits_2(
    saved: tuple[blm.Artifact, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art, _ = saved
    blm.train(art.dataset, "pop", out_dir=tmp_path / "pop", progress=False)
    assert main(["explain", str(tmp_path / "pop"), "--user", "u1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "neural" in err


def test_a_hypothetical_event_comes_after_the_timeline() -> None:
    s = blm.Sequences.from_lists([[1, 2]], n_items=5)
    s = replace(s, timestamps=np.array([10, 20]))
    with pytest.raises(ValueError, match="before the timeline's last event"):
        append_event(s, Event(item=3, action=1, timestamp=15))
    later = append_event(s, Event(item=3, action=1, timestamp=20))
    assert later.timestamps.tolist() == [10, 20, 20]


def test_actions_the_model_never_read_are_refused_and_reach_says_why_it_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [f"u{u},i{(u + k) % 8},{100 * k},view" for u in range(12) for k in range(6)]
    rows += [f"u{u},i{u % 8},50,share" for u in range(0, 12, 3)]  # some shares, no follows
    rows += ["u1,i3,800,wishlist"]  # the test target of u1: never in the training rows
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,action\n" + "\n".join(rows) + "\n")
    ds = blm.preprocess(blm.read(path))
    tiny = [*OVERRIDES, "train.epochs=1", "train.schedule=epochs", "train.threads=1"]
    art = blm.train(ds, "sasrec", overrides=tiny, out_dir=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="not trained on action 'wishlist'"):
        blm.influence_user(art, "u2", "i2", "wishlist")
    with pytest.raises(ValueError, match="not trained on action 'wishlist'"):
        blm.explain_user(art, "u2", action="wishlist")
    # a built-in action coded below the data's largest, never in the log: refused as well
    with pytest.raises(ValueError, match="not trained on action 'cart'"):
        blm.influence_user(art, "u2", "i2", "cart")
    capsys.readouterr()
    run = str(tmp_path / "run")
    assert main(["influence", run, "--user", "u2", "--item", "i5", "--action", "share"]) == 0
    out = capsys.readouterr().out
    assert "social reach: this data set has no follow graph" in out
    assert re.search(r"p\(next = i5\) \d", out)
    # probabilities too small for four decimals are printed in significant digits
    import behaviorlm.cli as cli

    def tiny(artifact: blm.Artifact, result: blm.Influence) -> dict[str, object]:
        data = labelled_influence(artifact, result)
        data["items"] = [{**data["items"][0], "before": 4.42e-05, "after": 7.12e-05,
                          "change": 2.70e-05}]  # fmt: skip
        return data

    monkeypatch.setattr(cli, "labelled_influence", tiny)
    assert main(["influence", run, "--user", "u2", "--item", "i5", "--action", "share"]) == 0
    assert "4.42e-05 -> 7.12e-05 (+2.70e-05)" in capsys.readouterr().out

    def small(artifact: blm.Artifact, result: blm.Influence) -> dict[str, object]:
        data = labelled_influence(artifact, result)
        data["items"] = [{**data["items"][0], "before": 0.0102, "after": 0.010218,
                          "change": 1.85e-05}]  # fmt: skip
        return data

    monkeypatch.setattr(cli, "labelled_influence", small)
    assert main(["influence", run, "--user", "u2", "--item", "i5", "--action", "share"]) == 0
    assert "0.0102 -> 0.0102 (+1.85e-05)" in capsys.readouterr().out  # not +0.0000


def test_reach_by_an_event_the_model_never_learned_is_refused(tmp_path: Path) -> None:
    """A like reaches a follower as a view from the social source: a model whose data has
    no such views cannot tell its uplift (it would read an unknown token), while a share that
    it reads as the followee's own act still reaches them; a user without followers gets
    the empty reach."""
    raw = blm.simulate(150, seed=3)
    raw = replace(raw, events=raw.events.filter(pl.col("source") != "social"))
    ds = blm.preprocess(raw)
    tiny = [*OVERRIDES, "train.epochs=1", "train.threads=1", 'split.followee_actions=["share"]']
    run = tmp_path / "run"
    art = blm.train(ds, "sasrec", overrides=tiny, out_dir=run, progress=False, defaults=False)
    follows = ds.follows
    ids = ds.users["user_id"].to_list()  # internal user k is row k - 1
    sharer = ids[int(follows["followee"][0]) - 1]
    like = reaching_event(art, "like")
    assert "not trained on views from the social source" in like.unlearned
    with pytest.raises(ValueError, match=r"train it with 'like' in split\.followee_actions"):
        blm.influence_user(art, sharer, "i3", "like")
    with pytest.raises(ValueError, match="views from the social source"):
        blm.rank_influencers(art, "i3", action="like")
    assert reaching_event(art, "share").unlearned == ""
    # followers see shares and likes, not views or purchases: no reach to estimate
    for action in ("view", "purchase"):
        with pytest.raises(ValueError, match=rf"act followers see \(share, like\), not '{action}'"):
            blm.influence_user(art, sharer, "i3", action, reach=True)
        with pytest.raises(ValueError, match="act followers see"):
            blm.rank_influencers(art, "i3", action=action)
    # a model that reads followees' purchases puts them in followers' timelines: they reach
    feed = [*tiny[:-1], 'split.followee_actions=["share", "purchase"]']
    both = blm.train(ds, "sasrec", overrides=feed, progress=False, defaults=False)
    bought = blm.influence_user(both, sharer, "i3", "purchase", reach=True)
    assert bought.reach is not None
    assert bought.reach.followee_event
    shared = blm.influence_user(art, sharer, "i3", "share")
    assert shared.reach is not None
    assert len(shared.reach.users) > 0
    followed = set(follows["followee"].to_list())
    loner = next(u for k, u in enumerate(ids, start=1) if k not in followed)
    alone = blm.influence_user(art, loner, "i3", "like")
    assert alone.reach is not None
    assert len(alone.reach.users) == 0
    # a log without views: a like reaches a follower as a view, which the model never read
    viewless = replace(raw, events=raw.events.filter(pl.col("action") != "view"))
    other = blm.train(blm.preprocess(viewless), "sasrec", overrides=tiny, progress=False)
    assert reaching_event(other, "like").unlearned.startswith(
        "a like reaches a follower as a view, and the model was not trained on action 'view'"
    )
    # the user's own influence is there without the reach: --no-reach, "reach": false
    assert blm.influence_user(art, sharer, "i3", "like", reach=False).reach is None
    argv = ["influence", str(run), "--user", sharer, "--item", "i3", "--action", "like"]
    assert main(argv) == 2
    assert main([*argv, "--no-reach", "--json"]) == 0
    from fastapi.testclient import TestClient

    from behaviorlm.serve import create_app

    app = create_app(run, f"sqlite:///{tmp_path / 'events.db'}")
    with TestClient(app, raise_server_exceptions=False) as client:
        body = {"user_id": sharer, "item_id": "i3", "action": "like"}
        refused = client.post("/v1/influence", json=body)
        assert refused.status_code == 422
        assert '"reach": false' in refused.json()["detail"]
        assert client.post("/v1/influence", json={**body, "reach": False}).status_code == 200


def test_reach_refuses_follower_timelines_with_items_outside_the_catalogue(
    saved: tuple[blm.Artifact, Path],
) -> None:
    art, _ = saved
    n = art.model.n_items
    outside = blm.Sequences.from_lists([[1, 2, n + 5]], n_items=n + 5, users=[1])
    for call in (
        lambda: social_reach(art.model, outside, 3),
        lambda: follower_uplift(art.model, outside, 3),
        lambda: rank_by_reach(art.model, outside, np.array([1]), np.array([2]), item=3),
    ):
        with pytest.raises(ValueError, match=f"outside the model's catalogue 1..{n}"):
            call()


def test_small_probabilities_are_shown_in_significant_digits(
    saved: tuple[blm.Artifact, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = saved
    assert main(["explain", str(out), "--user", "u1", "--item", "i3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # as for an item of a large catalogue: p and every change in probability 1e-5 as large
    data["probability"] = 3.21e-5
    for e in data["events"]:
        e["probability"] *= 1e-5
    for g in data["groups"]:
        for key in ("ablation_probability", "attributed_probability"):
            if g[key] is not None:
                g[key] = 2.5e-6 if g[key] >= 0 else -2.5e-6
    text = io.StringIO()
    print_explanation(Console(file=text, width=200, color_system=None), "u1", data)
    printed = text.getvalue()
    assert "p = 3.21e-05" in printed
    groups = printed.split("feature groups")[1]
    assert "+2.50e-06" in groups or "-2.50e-06" in groups
    assert "0.0000" not in groups
