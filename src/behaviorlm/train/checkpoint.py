"""Training checkpoints that load without executing code.

A checkpoint is two files in the run directory:

* ``checkpoint.safetensors``: every tensor: the module weights (``model.*``), the best
  weights so far (``best.*``), the best weights before a cut epoch's partial validation
  (``best_before.*``, where it replaced them), the moving average of the weights where the
  run keeps one (``average.*``) and the optimizer state (``optim.<param index>.<name>``);
* ``checkpoint.json``: every scalar: epoch, step, best validation result, the configs.

Both carry the epoch (the tensors in their safetensors metadata), so a pair written by two
different epochs (a crash between the two writes) is detected instead of silently mixed.
Each file is written to a temporary name and renamed, so a file is never half written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from behaviorlm.files import write_whole

TENSORS_FILE = "checkpoint.safetensors"
META_FILE = "checkpoint.json"


@dataclass
class Checkpoint:
    """The state of a training run after an epoch.

    Examples
    --------
    >>> import tempfile
    >>> module = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.AdamW(module.parameters())
    >>> module(torch.ones(1, 2)).sum().backward()
    >>> opt.step()
    >>> ckpt = Checkpoint.capture(module, opt, best=None, meta={"epoch": 1})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     ckpt.save(tmp)
    ...     again = Checkpoint.load(tmp)
    >>> again.meta["epoch"], sorted(again.optimizer[0])
    (1, ['exp_avg', 'exp_avg_sq', 'step'])
    """

    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    optimizer: dict[int, dict[str, torch.Tensor]]
    meta: dict[str, Any]
    average: dict[str, torch.Tensor] | None = None
    best_before: dict[str, torch.Tensor] | None = None

    @classmethod
    def capture(
        cls,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        best: dict[str, torch.Tensor] | None,
        meta: dict[str, Any],
        average: dict[str, torch.Tensor] | None = None,
        best_before: dict[str, torch.Tensor] | None = None,
    ) -> Checkpoint:
        """Copy the current state to the CPU (the training run may go on changing the
        originals, on any device); ``average`` is the run's moving average of the weights
        (:class:`behaviorlm.train.averaging.WeightAverage`), if it keeps one; ``best_before``
        the best weights that a cut epoch's partial validation replaced, if it did."""
        state = optimizer.state_dict()["state"]

        def copy(tensor: torch.Tensor) -> torch.Tensor:  # on the CPU: resumable on any device
            return tensor.detach().to("cpu", copy=True)

        return cls(
            model={k: copy(v) for k, v in module.state_dict().items()},
            best=None if best is None else {k: copy(v) for k, v in best.items()},
            optimizer={
                int(i): {k: copy(v) for k, v in s.items() if torch.is_tensor(v)}
                for i, s in state.items()
            },
            meta=dict(meta),
            average=None if average is None else {k: copy(v) for k, v in average.items()},
            best_before=None
            if best_before is None
            else {k: copy(v) for k, v in best_before.items()},
        )

    def restore(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Load the weights into ``module`` and the state into ``optimizer`` (same layout)."""
        module.load_state_dict(self.model)
        state_dict = optimizer.state_dict()
        state_dict["state"] = {i: dict(s) for i, s in self.optimizer.items()}
        optimizer.load_state_dict(state_dict)

    def save(self, run_dir: str | Path) -> None:
        """Write ``checkpoint.safetensors`` and ``checkpoint.json`` into ``run_dir``."""
        path = Path(run_dir)
        tensors = {f"model.{k}": v.contiguous() for k, v in self.model.items()}
        if self.best is not None:
            tensors.update({f"best.{k}": v.contiguous() for k, v in self.best.items()})
        if self.average is not None:
            tensors.update({f"average.{k}": v.contiguous() for k, v in self.average.items()})
        if self.best_before is not None:
            tensors.update(
                {f"best_before.{k}": v.contiguous() for k, v in self.best_before.items()}
            )
        for i, s in self.optimizer.items():
            tensors.update({f"optim.{i}.{k}": v.contiguous() for k, v in s.items()})
        epoch = str(self.meta.get("epoch"))
        tmp = path / (TENSORS_FILE + ".tmp")
        save_file(tensors, str(tmp), metadata={"epoch": epoch})
        os.replace(tmp, path / TENSORS_FILE)
        write_whole(path / META_FILE, json.dumps(self.meta, indent=2) + "\n")

    @staticmethod
    def exists(run_dir: str | Path) -> bool:
        """Whether ``run_dir`` holds a checkpoint."""
        return (Path(run_dir) / META_FILE).is_file() and (Path(run_dir) / TENSORS_FILE).is_file()

    @classmethod
    def load(cls, run_dir: str | Path) -> Checkpoint:
        """Read a checkpoint written by :meth:`save`; raises ValueError if the files disagree."""
        path = Path(run_dir)
        try:
            return cls._read(path)
        except (OSError, json.JSONDecodeError, SafetensorError) as exc:  # cut short, say
            raise ValueError(
                f"{path}: the checkpoint cannot be read ({str(exc).splitlines()[0]}); delete "
                f"{META_FILE} and {TENSORS_FILE} to start the run again"
            ) from exc

    @classmethod
    def _read(cls, path: Path) -> Checkpoint:
        """:meth:`load` without the translation of unreadable files."""
        meta = json.loads((path / META_FILE).read_text())
        model: dict[str, torch.Tensor] = {}
        best: dict[str, torch.Tensor] = {}
        average: dict[str, torch.Tensor] = {}
        before: dict[str, torch.Tensor] = {}
        optimizer: dict[int, dict[str, torch.Tensor]] = {}
        with safe_open(str(path / TENSORS_FILE), framework="pt") as f:
            written = (f.metadata() or {}).get("epoch")
            if written != str(meta.get("epoch")):
                raise ValueError(
                    f"{path}: {TENSORS_FILE} is from epoch {written} but {META_FILE} from epoch "
                    f"{meta.get('epoch')}; delete both files to start the run again"
                )
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                kind, _, name = key.partition(".")
                if kind == "model":
                    model[name] = f.get_tensor(key)
                elif kind == "best":
                    best[name] = f.get_tensor(key)
                elif kind == "average":
                    average[name] = f.get_tensor(key)
                elif kind == "best_before":
                    before[name] = f.get_tensor(key)
                else:
                    index, _, field = name.partition(".")
                    optimizer.setdefault(int(index), {})[field] = f.get_tensor(key)
        return cls(
            model=model,
            best=best or None,
            optimizer=optimizer,
            meta=meta,
            average=average or None,
            best_before=before or None,
        )
