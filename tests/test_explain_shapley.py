"""Shapley values of events: exact against the subset formula, efficient, seeded, wired in."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import behaviorlm as blm
from behaviorlm.cli import main
from behaviorlm.explain import Target, explain
from behaviorlm.explain.components import edited_components
from behaviorlm.explain.shapley import CONTEXT_PLAYERS, context_players, orders, shapley
from behaviorlm.explain.target import target_scores
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import Sequences
from behaviorlm.serve import Limits, Service, create_app, open_store
from behaviorlm.serve.service import RequestError

TINY = ["model.dim=16", "model.layers=2", "model.heads=2", "model.max_len=20"]


@pytest.fixture(scope="module")
def dataset() -> blm.Dataset:
    return blm.preprocess(blm.simulate(150, seed=3))


@pytest.fixture(scope="module", params=["sasrec", "hstu"])
def art(request: pytest.FixtureRequest, dataset: blm.Dataset) -> blm.Artifact:
    overrides = [*TINY, "train.epochs=2", "train.threads=1"]
    return blm.train(dataset, request.param, overrides=overrides, progress=False)


def long_row(art: blm.Artifact) -> Sequences:
    """A timeline with more events than the model reads."""
    seqs = art.dataset.sequences()
    return seqs.row(int(np.flatnonzero((seqs.lengths > 25) & (seqs.lengths < 60))[0]))


def logit_of(model: NeuralRecommender, rows: Sequences, item: int) -> np.ndarray:
    return model.score(rows)[:, item - 1].astype(np.float64)


def test_orders_are_every_order_or_antithetic_pairs() -> None:
    rng = np.random.default_rng(0)
    every = orders(4, 24, rng)
    assert {tuple(o) for o in every} == set(itertools.permutations(range(4)))
    sampled = orders(6, 10, rng)
    assert sampled.shape == (10, 6)
    assert all(sorted(o) == list(range(6)) for o in sampled.tolist())
    assert (sampled[1::2] == sampled[0::2, ::-1]).all()
    with pytest.raises(ValueError, match="at least 1"):
        orders(3, 0, rng)


def test_exact_values_equal_the_subset_formula(art: blm.Artifact) -> None:
    """With k! <= samples every order is taken: the values are exact Shapley values."""
    model, history = art.model, long_row(art)
    assert isinstance(model, NeuralRecommender)
    n, item = len(history.items), 7
    players = np.arange(n - 4, n)  # the last 4 events; the others stay
    _, _, values, _ = shapley(model, history, Target.item(item), players, samples=24)

    subsets = [s for r in range(5) for s in itertools.combinations(range(4), r)]
    keep = np.ones((len(subsets), n), dtype=bool)
    keep[:, players] = False
    for row, s in enumerate(subsets):
        keep[row, players[list(s)]] = True
    rows = history.select(np.zeros(len(subsets), dtype=np.int64)).take_events(keep.ravel())
    value = dict(zip(subsets, logit_of(model, rows, item), strict=True))
    for i in range(4):
        exact = 0.0
        for s in subsets:
            if i in s:
                continue
            weight = math.factorial(len(s)) * math.factorial(4 - len(s) - 1) / math.factorial(4)
            exact += weight * (value[tuple(sorted((*s, i)))] - value[s])
        assert values[i] == pytest.approx(exact, abs=1e-4)


def test_exact_values_with_context_players_equal_the_subset_formula(art: blm.Artifact) -> None:
    """Location and device as players beside 3 events: 5! = 120 orders, all taken."""
    model, history = art.model, long_row(art)
    assert isinstance(model, NeuralRecommender)
    n, item, groups = len(history.items), 7, list(CONTEXT_PLAYERS)
    players = np.arange(n - 3, n)
    _, _, values, _ = shapley(
        model, history, Target.item(item), players, samples=120, components=groups
    )
    assert values.shape == (5,)

    def value(s: tuple[int, ...]) -> float:
        """The logit with players ``s`` present: the events kept, the components kept."""
        keep = np.ones(n, dtype=bool)
        keep[[p for j, p in enumerate(players) if j not in s]] = False
        row = history.take_events(keep)
        batch = model.batch(row)
        theirs = torch.from_numpy(row.is_followee_event()[-batch.shape[1] :]).view(1, -1, 1)

        def drop(group: str, output: torch.Tensor) -> torch.Tensor:
            present = 3 + groups.index(group) in s
            return output if present else torch.where(theirs, output, torch.zeros(()))

        with torch.no_grad(), edited_components(model.module, groups, 1, drop):
            return float(target_scores(model.module, batch, Target.item(item))[0][0])

    subsets = [s for r in range(6) for s in itertools.combinations(range(5), r)]
    scores = {s: value(s) for s in subsets}
    for i in range(5):
        exact = sum(
            math.factorial(len(s))
            * math.factorial(4 - len(s))
            / math.factorial(5)
            * (scores[tuple(sorted((*s, i)))] - scores[s])
            for s in subsets
            if i not in s
        )
        assert values[i] == pytest.approx(exact, abs=1e-4)
    assert values[3:].any()  # the components matter to this model


@pytest.mark.parametrize("kind", ["item", "action"])
def test_sampled_values_are_efficient_and_seeded(art: blm.Artifact, kind: str) -> None:
    model, history = art.model, long_row(art)
    assert isinstance(model, NeuralRecommender)
    n = len(history.items)
    window = np.arange(n - 20, n)
    target = Target.item(5) if kind == "item" else Target.action(4)
    full, empty, logit, prob = shapley(model, history, target, window, samples=8, seed=1)
    assert logit.sum() == pytest.approx(full[0] - empty[0], abs=1e-4)
    assert prob.sum() == pytest.approx(full[1] - empty[1], abs=1e-6)
    if kind == "item":  # the baseline is the timeline without every explained event
        without = history.take_events(np.arange(n) < n - 20)
        assert empty[0] == pytest.approx(logit_of(model, without, 5)[0], abs=1e-4)
        assert full[0] == pytest.approx(logit_of(model, history, 5)[0], abs=1e-4)
    again = shapley(model, history, target, window, samples=8, seed=1)[2]
    other = shapley(model, history, target, window, samples=8, seed=2)[2]
    np.testing.assert_array_equal(logit, again)
    assert not np.allclose(logit, other)


def test_explain_with_shapley(art: blm.Artifact) -> None:
    history = long_row(art)
    e = explain(art.model, history, 5, method="shapley", samples=8)
    assert e.method == "shapley"
    assert len(e.events) == 20
    assert e.baseline_logit is not None
    assert e.baseline_probability is not None
    context = {g.group: g.attributed_logit for g in e.groups if g.group in CONTEXT_PLAYERS}
    assert set(context) == set(CONTEXT_PLAYERS)  # the simulator has both
    assert all(v is not None for v in context.values())
    # the events' values and the context groups' add up to the score minus the baseline
    assert sum(ev.logit or 0.0 for ev in e.events) + sum(
        v or 0.0 for v in context.values()
    ) == pytest.approx(e.logit - e.baseline_logit, abs=1e-4)
    for g in e.groups:  # event kinds sum up, as for occlusion
        if g.group in ("history", "search", "social"):
            kinds = [ev.logit or 0.0 for ev in e.events if ev.kind == g.group]
            assert g.attributed_logit == pytest.approx(sum(kinds), abs=1e-5)
        elif g.group not in CONTEXT_PLAYERS:
            assert g.attributed_logit is None
    json.dumps(e.to_dict())
    item = int(history.items[-1])
    aside = explain(art.model, history, item, "shapley", samples=8, without_target_events=True)
    assert aside.set_aside
    assert all(ev.item == item for ev in aside.set_aside)
    assert item not in [ev.item for ev in aside.events if ev.kind != "social"]
    for ev in (*aside.events, *aside.set_aside):  # positions in the whole timeline
        assert int(history.items[ev.index]) == ev.item
        assert int(history.event_ids[ev.index]) == ev.event_id


def test_shapley_from_the_cli_and_the_service(
    art: blm.Artifact, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "art"
    art.save(folder)
    user = str(art.dataset.users["user_id"][0])
    argv = ["explain", str(folder), "--user", user, "--method", "shapley", "--samples", "4"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "shapley"
    assert data["baseline_logit"] is not None
    assert main(argv) == 0
    assert "shapley" in capsys.readouterr().out
    # a setting of another method is refused, not ignored
    for flag, method in (("--samples", "occlusion"), ("--steps", "shapley")):
        other = ["explain", str(folder), "--user", user, "--method", method, flag, "4"]
        assert main(other) == 2
        assert f"{flag} sets --method" in capsys.readouterr().err
    # in Python too, by the function the command calls and by the service's
    with pytest.raises(ValueError, match="samples sets method shapley, not occlusion"):
        blm.explain_user(art, user, method="occlusion", samples=4)
    with pytest.raises(ValueError, match="steps sets method ig, not shapley"):
        blm.explain_user(art, user, method="shapley", steps=8)
    service = Service(folder, open_store(f"sqlite:///{tmp_path / 'py.db'}"))
    with pytest.raises(RequestError, match="steps sets method ig, not occlusion"):
        service.explain_user(user, method="occlusion", steps=8)
    service.close()

    app = create_app(
        folder,
        f"sqlite:///{tmp_path / 'ev.db'}",
        limits=Limits(max_samples=16, max_shapley_rows=100),
    )
    with TestClient(app) as c:
        url = f"/v1/users/{user}/explanation"
        ok = c.get(url, params={"method": "shapley", "samples": 4})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["method"] == "shapley"
        context = [g["attributed_logit"] for g in body["groups"] if g["group"] in CONTEXT_PLAYERS]
        assert len(context) == len(CONTEXT_PLAYERS)
        assert sum(ev["logit"] for ev in body["events"]) + sum(context) == pytest.approx(
            body["logit"] - body["baseline_logit"], abs=1e-4
        )
        rows = c.get(url, params={"method": "shapley", "samples": 16})  # 16 x 21 + 2 rows
        assert rows.status_code == 422
        assert "limit is 100" in rows.text
        over = c.get(url, params={"method": "shapley", "samples": 17})
        assert over.status_code == 422
        assert "less than or equal" in over.text
        # a setting of another method is refused, as on the command line
        for params in ({"method": "occlusion", "samples": 4}, {"method": "shapley", "steps": 64}):
            other = c.get(url, params=params)
            assert other.status_code == 422, other.text
            assert "sets method" in other.text


def test_shapley_takes_each_event_of_the_window_once(art: blm.Artifact) -> None:
    model, history = art.model, long_row(art)
    assert isinstance(model, NeuralRecommender)
    n = len(history.items)
    with pytest.raises(ValueError, match="events the model reads"):
        shapley(model, history, Target.item(1), np.array([n - 21, n - 1]))
    with pytest.raises(ValueError, match="once"):
        shapley(model, history, Target.item(1), np.array([n - 2, n - 2]))


def test_context_players_are_the_groups_the_model_reads(
    art: blm.Artifact, dataset: blm.Dataset
) -> None:
    assert isinstance(art.model, NeuralRecommender)
    assert context_players(art.model) == list(CONTEXT_PLAYERS)  # the simulator has both
    off = ["model.features.location=false", *TINY, "train.epochs=1", "train.threads=1"]
    without = blm.train(dataset, art.model.name, overrides=off, progress=False)
    assert isinstance(without.model, NeuralRecommender)
    assert context_players(without.model) == ["device"]
    mlp = blm.train(dataset, "mlp", overrides=["train.epochs=1"], progress=False)
    assert isinstance(mlp.model, NeuralRecommender)
    assert context_players(mlp.model) == []  # it reads the items only
    e = explain(mlp.model, long_row(mlp), 5, method="shapley", samples=4)
    assert all(g.attributed_logit is None for g in e.groups if g.group in CONTEXT_PLAYERS)
