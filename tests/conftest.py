"""Fixtures shared by test modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import behaviorlm as blm

#: A SASRec small enough to train in a second or two.
TINY_SASREC = (
    "model.dim=16",
    "model.layers=1",
    "model.heads=2",
    "model.max_len=20",
    "train.epochs=2",
    "train.threads=1",
)


@pytest.fixture(scope="session")
def train_tiny_sasrec(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``train(dataset, *overrides)``: the folder of a tiny SASRec artifact trained on it,
    from the config classes' defaults (no followees' shares unless an override adds them)."""

    def train(dataset: blm.Dataset, *overrides: str) -> Path:
        out = tmp_path_factory.mktemp("sasrec")
        overrides = (*TINY_SASREC, *overrides)
        blm.train(
            dataset, "sasrec", overrides=overrides, out_dir=out, progress=False, defaults=False
        )
        return out

    return train


@pytest.fixture
def crash_at_validation(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``crash_at_validation(n)``: the training loop's ``n``-th validation from now on raises
    KeyboardInterrupt, as if the run were stopped there (after the checkpoint of the epoch
    before); ``monkeypatch.undo()`` restores validation."""
    from behaviorlm.train import engine

    def crash_at(n: int) -> None:
        real, calls = engine.validate, []

        def validate(model: Any, evalset: Any, exclude_seen: bool = True) -> dict[str, float]:
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(model, evalset, exclude_seen)

        monkeypatch.setattr(engine, "validate", validate)

    return crash_at


@pytest.fixture
def count_epochs(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[int]]:
    """``count_epochs()``: the list of the epochs that the training loop trains from then on,
    in order, filled as it runs (a resumed run starts after its checkpoint's epoch)."""
    from behaviorlm.train import engine

    def count() -> list[int]:
        trained: list[int] = []
        real = engine._Loop._train_epoch

        def train_epoch(loop: Any, *args: Any) -> Any:
            trained.append(loop.epoch)
            return real(loop, *args)

        monkeypatch.setattr(engine._Loop, "_train_epoch", train_epoch)
        return trained

    return count
