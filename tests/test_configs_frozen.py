"""The shipped per-data-set config files are the default ones.

The results table promises one default configuration per model: ``configs/<dataset>/<model>.toml``
may differ from ``configs/default/<model>.toml`` only in the sequence length (``model.max_len``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from behaviorlm.config import load_toml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT = CONFIGS / "default"
#: Keys a per-data-set config may change: (section, key).
ALLOWED = {("model", "max_len")}
FROZEN = sorted(p for p in CONFIGS.glob("*/*.toml") if p.parent != DEFAULT)


def _flat(config: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def test_there_are_frozen_configs() -> None:
    assert FROZEN, "no configs/<dataset>/<model>.toml"


@pytest.mark.parametrize("path", FROZEN, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_frozen_config_is_the_default_but_for_sequence_length(path: Path) -> None:
    default = DEFAULT / path.name
    assert default.is_file(), f"{path} has no default {default}"
    mine, base = _flat(load_toml(path)), _flat(load_toml(default))
    changed = {k for k in mine.keys() | base.keys() if mine.get(k) != base.get(k)}
    assert changed <= ALLOWED, f"{path} changes {sorted(changed - ALLOWED)}"
