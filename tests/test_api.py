"""The public Python API: the pipeline as plain functions from the package root."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import behaviorlm as blm
from behaviorlm.train.run import fit_to_data, resolve_run_config


def test_root_names_are_functions_even_after_submodule_imports() -> None:
    importlib.import_module("behaviorlm.train.run")
    importlib.import_module("behaviorlm.evaluate.runner")
    assert callable(blm.train)
    assert callable(blm.evaluate)
    assert callable(blm.recommend)
    assert set(blm.__all__) <= set(dir(blm))


def test_pipeline_from_the_root() -> None:
    ds = blm.preprocess(blm.simulate(120, seed=2))
    art = blm.train(ds, "markov")
    result = blm.evaluate_artifact(art, ks=(10,))
    assert 0.0 <= result.metrics["NDCG"][10] <= 1.0
    with pytest.raises(ValueError, match="'test' or 'valid'"):
        blm.evaluate_artifact(art, on="Test")  # type: ignore[arg-type]
    assert blm.evaluate_artifact(art, ks=(10,), name="markov-a").model == "markov-a"
    user = ds.users["user_id"][0]
    top = blm.recommend(art.model, art.histories([user]), k=5)
    assert top.items.shape == (1, 5)
    rows = art.item_table(top.items[0][top.items[0] > 0])
    assert all("title" in row for row in rows)


def test_item_table_leaves_padding_out_and_refuses_unknown_ids() -> None:
    ds = blm.preprocess(blm.simulate(60, seed=3))
    art = blm.train(ds, "markov", progress=False)
    user = ds.users["user_id"][0]
    top = blm.recommend(art.model, art.histories([user]), k=10, allowed_items=[3, 5])
    listed = top.items[0][top.items[0] > 0]
    assert 1 <= len(listed) <= 2
    assert (top.items[0][len(listed) :] == 0).all()  # padding after the allowed items
    names = [row["item_id"] for row in art.item_table(top.items[0])]
    assert names == [ds.items["item_id"][int(i) - 1] for i in listed]
    for bad in (-1, ds.n_items + 1):
        with pytest.raises(ValueError, match="outside"):
            art.item_table([bad])  # type: ignore[arg-type]


def test_artifact_files_are_as_readable_as_new_files(tmp_path: Path) -> None:
    """A server that runs as another user reads every file of an artifact, weights too."""
    dataset = blm.preprocess(blm.simulate(60, seed=1))
    blm.train(dataset, "markov", out_dir=tmp_path / "run", progress=False)
    fresh = tmp_path / "fresh"
    fresh.write_text("")
    mode = fresh.stat().st_mode & 0o777
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in files} == {
        p.relative_to(tmp_path).as_posix(): mode for p in files
    }


def test_unknown_or_misgiven_ids_are_named() -> None:
    ds = blm.preprocess(blm.simulate(60, seed=3))
    art = blm.train(ds, "markov", progress=False)
    known = str(ds.users["user_id"][0])
    with pytest.raises(TypeError, match="a list of ids"):
        art.histories(known)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a list of ids"):
        art.item_ids(str(ds.items["item_id"][0]))  # type: ignore[arg-type]
    with pytest.raises(blm.DataError, match=r"unknown user id\(s\): zz \(in"):
        art.user_index([known, "zz"])
    # ids given as numbers are named as they print, for items as for users
    with pytest.raises(blm.DataError, match=r"unknown item id\(s\): 123456 \(in"):
        art.item_ids([123456])  # type: ignore[list-item]
    with pytest.raises(blm.DataError, match=r"unknown user id\(s\): 123456 \(in"):
        art.user_index([123456])  # type: ignore[list-item]


def test_a_log_without_times_trains_without_the_time_group(tmp_path: Path) -> None:
    """Row numbers are no times: the gap embedding and hstu's time bias stay off, so a
    later event stamped by a real clock scores as one stamped like the training rows."""
    rows = [f"u{u},i{(u * 3 + k) % 7}" for u in range(12) for k in range(5)]
    (tmp_path / "log.csv").write_text("user_id,item_id\n" + "\n".join(rows) + "\n")
    ds = blm.preprocess(blm.read(tmp_path / "log.csv"))
    assert not ds.meta["has_time"]
    tiny = ["model.dim=8", "model.heads=1", "train.epochs=1", "train.schedule=epochs"]
    for name in ("sasrec", "hstu"):
        art = blm.train(ds, name, overrides=tiny, progress=False)
        assert art.run["config"]["model"]["features"]["time"] is False
        assert art.model.config.features.time is False
        (seqs,) = [art.histories(["u1"])]
        late = seqs.timestamps.copy()
        late[-1] = 1_700_000_000  # the service stamps a live event with the clock
        now = blm.recommend(art.model, seqs, k=5).scores
        later = blm.recommend(art.model, replace(seqs, timestamps=late), k=5).scores
        np.testing.assert_allclose(now, later, rtol=0, atol=0)
    # pop's window would count the last rows of the file: refused before any work
    with pytest.raises(blm.ConfigError, match=r"window_seconds.*no timestamps"):
        blm.train(ds, "pop", overrides=["model.window_seconds=20"], progress=False)
    assert blm.train(ds, "pop", progress=False).model.name == "pop"


def test_followee_events_join_only_the_timelines_of_models_that_tell_them_apart() -> None:
    ds = blm.preprocess(blm.simulate(60, seed=4))
    feed = ["split.followee_actions=['share']"]
    assert (
        blm.train(ds, "markov", overrides=feed, progress=False).run["config"]["split"][
            "followee_actions"
        ]
        == []
    )
    tiny = [*feed, "model.dim=8", "model.heads=1", "train.epochs=1", "train.schedule=epochs"]
    social = blm.train(ds, "sasrec", overrides=tiny, progress=False)
    assert social.run["config"]["split"]["followee_actions"] == ["share"]
    off = blm.train(ds, "sasrec", overrides=[*tiny, "model.features.social=false"], progress=False)
    assert off.run["config"]["split"]["followee_actions"] == []
    assert off.run["train_events"] < social.run["train_events"]
    # without real times no feed can be built: none is configured for the service to add
    cfg = resolve_run_config("sasrec", overrides=feed)
    ds.meta["has_time"] = False
    assert fit_to_data(cfg, ds).split.followee_actions == ()


def test_a_wrong_kind_of_argument_says_what_to_pass(tmp_path: Path) -> None:
    ds = blm.preprocess(blm.simulate(60, seed=1))
    art = blm.train(ds, "markov", out_dir=tmp_path / "run", progress=False)
    split = art.split()
    history = art.histories([str(ds.users["user_id"][0])])
    for call in (
        lambda: blm.recommend(art, history),  # type: ignore[arg-type]
        lambda: blm.evaluate(art, split.test),  # type: ignore[arg-type]
        lambda: blm.explain(art, history),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match=r"got an Artifact: pass its \.model"):
            call()
    with pytest.raises(TypeError, match=r"expected an EvalSet \(a split's \.test or \.valid\)"):
        blm.evaluate(art.model, split)  # type: ignore[arg-type]
    # an artifact's path where an artifact is taken
    by_path = blm.evaluate_artifact(str(tmp_path / "run"), ks=(10,))
    assert by_path.metrics == blm.evaluate_artifact(art, ks=(10,)).metrics


def test_every_module_imports_and_the_shadowed_ones_by_from() -> None:
    # blm.explain and blm.influence are the functions; their modules import by `from`
    import importlib
    import pkgutil
    import types

    import behaviorlm

    names = [m.name for m in pkgutil.walk_packages(behaviorlm.__path__, "behaviorlm.")]
    assert "behaviorlm.explain.shapley" in names
    for name in names:
        if not name.endswith("__main__"):
            assert importlib.import_module(name).__name__ == name
    from behaviorlm.explain import influence, shapley

    assert isinstance(shapley, types.ModuleType)
    assert callable(blm.explain)
    assert callable(influence)  # the function, as blm.influence is
    from behaviorlm.explain.influence import append_event

    assert append_event.__module__ == "behaviorlm.explain.influence"


def test_an_artifact_checks_its_parts_on_load_and_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from behaviorlm.data.dataset import Dataset

    first = blm.train(blm.preprocess(blm.simulate(60, seed=0)), "pop", out_dir=tmp_path / "a")
    blm.train(blm.preprocess(blm.simulate(60, seed=1)), "pop", out_dir=tmp_path / "b")
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "a", mixed)
    shutil.rmtree(mixed / "dataset")
    shutil.copytree(tmp_path / "b" / "dataset", mixed / "dataset")
    assert blm.Artifact.load(tmp_path / "b").dataset.n_events != first.dataset.n_events
    with pytest.raises(blm.DataError, match="not the one this model was saved with"):
        blm.Artifact.load(mixed)
    (mixed / "dataset" / "dataset.json").write_text("{x")
    with pytest.raises(blm.DataError, match=r"dataset\.json is damaged"):
        blm.Artifact.load(mixed)

    def disk_full(self: Dataset, path: object, checked: bool = True) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Dataset, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        first.save(tmp_path / "b")  # over another artifact: no artifact.json over a mix
    assert not (tmp_path / "b" / "artifact.json").exists()


@pytest.mark.parametrize("model", ["pop", "markov", "itemknn"])
def test_a_baselines_weights_of_another_catalogue_are_refused(tmp_path: Path, model: str) -> None:
    import shutil

    small = blm.preprocess(blm.simulate(60, seed=0))
    large = blm.preprocess(blm.simulate(300, seed=0))
    assert small.n_items != large.n_items
    blm.train(small, model, out_dir=tmp_path / "small")
    blm.train(large, model, out_dir=tmp_path / "large")
    weights = "model/weights.safetensors"
    shutil.copy(tmp_path / "large" / weights, tmp_path / "small" / weights)
    with pytest.raises(blm.DataError, match=r"rows where \d+ items need \d+"):
        blm.Artifact.load(tmp_path / "small")
