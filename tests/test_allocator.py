"""Retained freed memory: the settings apply on glibc, respect the user's, and cut page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from behaviorlm.allocator import (
    OPT_OUT,
    PRELOADED,
    USER_SETTINGS,
    is_glibc,
    retain_freed_memory,
    user_configured,
)

#: glibc's own malloc, not one preloaded in its place.
GLIBC = is_glibc() and not any(name in os.environ.get("LD_PRELOAD", "") for name in PRELOADED)

#: One occlusion explanation of a 200-event timeline, repeated; prints its minor page faults.
WORKLOAD = """
import json, resource, sys
import numpy as np
import behaviorlm as blm
from behaviorlm.models.sasrec import SASRec, SASRecConfig
from behaviorlm.schema import Sequences

if sys.argv[1] == "retain":
    assert blm.retain_freed_memory()
rng = np.random.default_rng(0)
history = Sequences.from_lists([rng.integers(1, 3001, 200).tolist()], n_items=3000)
model = SASRec(SASRecConfig(dim=64, layers=2, max_len=200))
model.setup(history)
for _ in range(2):
    blm.explain(model, history, target=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    blm.explain(model, history, target=1)
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5))
"""


def faults_per_call(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    for name in ("GLIBC_TUNABLES", OPT_OUT, "LD_PRELOAD"):
        env.pop(name, None)
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    value: float = json.loads(done.stdout.strip().splitlines()[-1])
    return value


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_retained_memory_spares_the_page_faults_of_repeated_explanations() -> None:
    # in fresh processes: the setting lasts for the process's life (the retaining one also
    # checks that retain_freed_memory() says the settings took effect)
    # with the defaults each call maps fresh pages for its large temporaries: about 500 to
    # 1,500 here in most processes, but glibc's dynamic thresholds sometimes settle on sizes
    # that spare them (one process in ten saw 30), so the most of three processes counts;
    # retained, a few dozen at most
    default = max(faults_per_call("default") for _ in range(3))
    retained = faults_per_call("retain")
    assert default > 200
    assert retained < default / 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MALLOC_TRIM_THRESHOLD_", "1048576"),
        ("MALLOC_MMAP_THRESHOLD_", "131072"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576"),
        ("BEHAVIORLM_MALLOC", "default"),
        ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    ],
)
def test_the_users_own_settings_and_the_opt_out_win(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert user_configured()
    assert retain_freed_memory() is False


def test_other_tunables_are_not_threshold_settings() -> None:
    assert not user_configured({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"})
    assert not user_configured({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert not user_configured({"BEHAVIORLM_MALLOC": "retain", "LD_PRELOAD": "libfoo.so"})


@pytest.mark.parametrize(("mmap", "trim"), [(0, 128), (33, 128), (32, 0), (32, 2048)])
def test_thresholds_out_of_range_are_refused(mmap: int, trim: int) -> None:
    with pytest.raises(ValueError, match="threshold_mib must be"):
        retain_freed_memory(mmap_threshold_mib=mmap, trim_threshold_mib=trim)
