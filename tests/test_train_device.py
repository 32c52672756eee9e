"""``[train] device``: which device a run trains on, and training on a GPU.

The tests marked ``gpu`` need a CUDA GPU and are skipped without one; they compare a run on
the GPU with the same run on the CPU (no dropout, so both draw nothing of their own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import behaviorlm as blm
from behaviorlm.artifact import Artifact
from behaviorlm.cli import main
from behaviorlm.config import ConfigError
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.models.hstu import HSTU, HSTUConfig
from behaviorlm.models.mlp import MLP, MLPConfig
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.models.sasrec import SASRec, SASRecConfig
from behaviorlm.schema import Split
from behaviorlm.train import TrainConfig, distributed, fit_model
from behaviorlm.train.device import train_device
from behaviorlm.train.distributed import World, current_world
from behaviorlm.train.losses import full_softmax_loss
from run_files import metrics_lines

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

RUN = TrainConfig(
    epochs=3, batch_size=16, lr=5e-3, threads=1, warmup_steps=2, patience=0, weight_decay=0.0
)


def split() -> Split:
    return make_split(blm.preprocess(blm.simulate(n_users=120, seed=3)), SplitConfig())


def model_of(name: str) -> NeuralRecommender:
    if name == "sasrec":
        return SASRec(SASRecConfig(dim=16, layers=1, heads=2, max_len=20, dropout=0.0))
    if name == "hstu":
        return HSTU(HSTUConfig(dim=16, layers=1, heads=2, max_len=20, dropout=0.0))
    return MLP(MLPConfig(hidden=16, dropout=0.0))


def losses(run_dir: Path) -> list[float]:
    return [line["loss"] for line in metrics_lines(run_dir)]


def on_cpu(model: NeuralRecommender) -> bool:
    return all(t.device.type == "cpu" for t in model.module.state_dict().values())


# ---- which device ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_values_are_accepted(name: str) -> None:
    assert TrainConfig(device=name).device == name


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", ""])
def test_other_device_values_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"train\.device"):
        TrainConfig(device=name)


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int, nccl: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: nccl)


@pytest.mark.parametrize(
    ("gpus", "world", "name", "expected"),
    [
        (0, World(), "auto", "cpu"),
        (1, World(), "auto", "cuda:0"),
        (2, World(), "cuda", "cuda:0"),
        (2, World(), "cuda:1", "cuda:1"),
        (2, World(), "cpu", "cpu"),
        # under torchrun each process takes the GPU of its local rank
        (2, World(rank=3, size=4, local_rank=1, local_size=2), "auto", "cuda:1"),
        (2, World(rank=3, size=4, local_rank=1, local_size=2), "cuda", "cuda:1"),
        # more local ranks than GPUs: "auto" trains on the CPU, as the process group does
        (1, World(rank=1, size=2, local_rank=1, local_size=2), "auto", "cpu"),
    ],
)
def test_train_device_resolution(
    monkeypatch: pytest.MonkeyPatch, gpus: int, world: World, name: str, expected: str
) -> None:
    fake_gpus(monkeypatch, gpus)
    assert train_device(name, world) == torch.device(expected)


def test_auto_takes_the_gpus_of_several_processes_only_with_nccl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_gpus(monkeypatch, 2, nccl=False)  # the process group would carry no CUDA tensors
    assert train_device("auto", World(rank=1, size=2, local_rank=1, local_size=2)).type == "cpu"
    assert train_device("auto", World()) == torch.device("cuda:0")  # one process needs none


def test_a_group_started_elsewhere_takes_its_local_rank_from_the_launcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(distributed, "_launched", None)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    world = current_world()
    assert world == World(rank=3, size=4, local_rank=1, local_size=2)
    fake_gpus(monkeypatch, 2)
    assert train_device("auto", world) == torch.device("cuda:1")


@pytest.mark.parametrize(
    ("gpus", "world", "name", "message"),
    [
        (0, World(), "cuda", "needs GPU 0, but torch sees no GPU"),
        (2, World(), "cuda:2", "needs GPU 2, but torch sees 2 GPUs"),
        (1, World(rank=1, size=2, local_rank=1, local_size=2), "cuda", "needs GPU 1"),
        (2, World(rank=0, size=2, local_rank=0, local_size=2), "cuda:0", "under torchrun"),
    ],
)
def test_unusable_devices_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, gpus: int, world: World, name: str, message: str
) -> None:
    fake_gpus(monkeypatch, gpus)
    with pytest.raises(ConfigError, match=message):
        train_device(name, world)


def test_cli_refuses_a_gpu_that_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blm.preprocess(blm.simulate(40, seed=1)).save(tmp_path / "ds")
    missing = f"cuda:{torch.cuda.device_count()}"
    argv = ["train", str(tmp_path / "ds"), "--model", "sasrec", "--out", str(tmp_path / "run")]
    assert main([*argv, f"--train.device={missing}"]) == 2
    assert f"needs GPU {torch.cuda.device_count()}" in capsys.readouterr().err
    assert not (tmp_path / "run" / "config.json").exists()  # refused before the run began


def test_a_cpu_run_records_its_device(
    tmp_path: Path,
) -> None:
    model = model_of("sasrec")
    summary = fit_model(model, split(), replace(RUN, epochs=1, device="cpu"), run_dir=tmp_path)
    assert summary["device"] == "cpu"
    assert on_cpu(model)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["device"] == "cpu"


# ---- on a GPU --------------------------------------------------------------------------


@gpu
@pytest.mark.parametrize("name", ["sasrec", "hstu", "mlp"])
def test_a_gpu_run_trains_the_model_a_cpu_run_trains(name: str, tmp_path: Path) -> None:
    data = split()
    runs: dict[str, Any] = {}
    for device in ("cpu", "cuda"):
        model = model_of(name)
        summary = fit_model(
            model, data, replace(RUN, device=device), run_dir=tmp_path / device, progress=False
        )
        assert on_cpu(model)  # handed back on the CPU, wherever it trained
        assert summary["device"] == ("cpu" if device == "cpu" else "cuda:0")
        runs[device] = (model, summary, losses(tmp_path / device))
    (cpu, cpu_summary, cpu_losses), (cuda, cuda_summary, cuda_losses) = runs.values()
    np.testing.assert_allclose(cuda_losses, cpu_losses, rtol=2e-3)
    assert cuda_summary["best_valid"]["HR@10"] == pytest.approx(
        cpu_summary["best_valid"]["HR@10"], abs=0.02
    )
    histories = data.test.histories.select(np.arange(20))
    np.testing.assert_allclose(cuda.score(histories), cpu.score(histories), atol=2e-2)


@gpu
def test_sampled_softmax_and_bf16_train_on_a_gpu(tmp_path: Path) -> None:
    data = split()
    sampled = replace(RUN, loss="sampled", num_negatives=64)
    for device in ("cpu", "cuda"):  # the negatives are drawn on the CPU: the same on both
        fit_model(
            model_of("sasrec"),
            data,
            replace(sampled, device=device),
            run_dir=tmp_path / device,
            progress=False,
        )
    np.testing.assert_allclose(losses(tmp_path / "cuda"), losses(tmp_path / "cpu"), rtol=2e-3)
    for precision, bf16 in (("bf16", True), ("fp32", False)):
        model = model_of("hstu")
        summary = fit_model(
            model,
            data,
            replace(RUN, epochs=4, device="cuda", bf16=bf16),
            run_dir=tmp_path / precision,
            progress=False,
        )
    low, full = losses(tmp_path / "bf16"), losses(tmp_path / "fp32")
    assert all(np.isfinite(low))
    assert low[-1] < low[0]
    assert low != full  # autocast took effect on the GPU ...
    np.testing.assert_allclose(low, full, rtol=5e-2)  # ... and trained about the same
    assert summary["best_valid"]["HR@10"] > 0
    assert on_cpu(model)


@gpu
def test_a_gpu_run_resumes_on_the_cpu(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash_at_validation: Callable[[int], None],
    count_epochs: Callable[[], list[int]],
) -> None:
    data = split()
    config = replace(RUN, device="cuda")
    fit_model(model_of("sasrec"), data, config, run_dir=tmp_path / "whole", progress=False)
    crash_at_validation(2)
    with pytest.raises(KeyboardInterrupt):
        fit_model(model_of("sasrec"), data, config, run_dir=tmp_path / "moved", progress=False)
    monkeypatch.undo()
    trained = count_epochs()
    model = model_of("sasrec")
    summary = fit_model(
        model,
        data,
        replace(config, device="cpu"),
        run_dir=tmp_path / "moved",
        resume=True,
        progress=False,
    )
    assert summary["epochs"] == 3
    assert trained == [2, 3]  # resumed after epoch 1, not started over
    assert on_cpu(model)
    np.testing.assert_allclose(losses(tmp_path / "moved"), losses(tmp_path / "whole"), rtol=2e-3)


@gpu
@pytest.mark.parametrize("chunk_elements", [31, None])
def test_the_full_softmax_on_a_gpu_equals_cross_entropy(chunk_elements: int | None) -> None:
    module = model_of("mlp").setup(split().train).cuda()  # item bias: every term is used
    hidden = torch.randn(40, 16, device="cuda", requires_grad=True)
    n = module.item_embeddings().shape[0] - 1
    targets = torch.randint(1, n + 1, (40,), device="cuda")
    params = [hidden, module.item_embeddings(), module.item_bias()]
    reference = torch.nn.functional.cross_entropy(module.logits(hidden)[:, 1:], targets - 1)
    expected = torch.autograd.grad(reference, params)
    got = full_softmax_loss(module, hidden, targets, chunk_elements)
    torch.testing.assert_close(got, reference)
    for g, e in zip(torch.autograd.grad(got, params), expected, strict=True):
        torch.testing.assert_close(g, e)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # products in bf16, softmax in float32
        low = full_softmax_loss(module, hidden, targets, chunk_elements)
    assert low.dtype == torch.float32
    assert not torch.equal(low, got)  # the products did run in bfloat16
    torch.testing.assert_close(low, reference, rtol=2e-2, atol=2e-2)


@gpu
def test_cli_trains_on_a_gpu_and_the_artifact_scores_on_the_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blm.preprocess(blm.simulate(80, seed=2)).save(tmp_path / "ds")
    config = Path(__file__).parents[1] / "configs" / "default" / "sasrec.toml"
    out = tmp_path / "run"
    argv = ["train", str(tmp_path / "ds"), "--config", str(config), "--out", str(out)]
    assert main([*argv, "--train.epochs=2", "--model.dim=16", "--train.device=cuda"]) == 0
    said = " ".join(capsys.readouterr().out.split())  # the console may wrap its lines
    assert " on cuda:0," in said  # the closing line says where it trained
    artifact = Artifact.load(out)
    assert artifact.run["config"]["train"]["device"] == "cuda"
    assert on_cpu(artifact.model)  # type: ignore[arg-type]
    histories = artifact.histories(artifact.dataset.users["user_id"][:3].to_list())
    assert np.isfinite(artifact.model.score(histories)).all()


@gpu
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_sasrec_attention_on_a_gpu_keeps_off_cudnn(
    dropout: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    cudnn_on: list[bool] = []
    attention = torch.nn.functional.scaled_dot_product_attention

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        cudnn_on.append(torch.backends.cuda.cudnn_sdp_enabled())
        return attention(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model = SASRec(SASRecConfig(dim=64, layers=2, heads=2, max_len=20, dropout=dropout))
    data = split()
    module = model.setup(data.train).cuda().train()
    padded = model.batch(data.train.select(np.arange(8))).to(torch.device("cuda"))
    full = padded.columns(slice(-1, None))  # one event each: no padding
    assert not bool(padded.mask.all())
    assert bool(full.mask.all())
    for batch in (padded, full):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            module.encode(batch).sum().backward()
    assert cudnn_on == [False] * 4  # two blocks, two batches
    assert torch.backends.cuda.cudnn_sdp_enabled()  # and back on after each call
