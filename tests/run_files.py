"""Reading a training run's folder in tests (imported by the test modules)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from behaviorlm.train.folder import METRICS_FILE


def metrics_lines(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch lines of the run's ``metrics.jsonl``, in order."""
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
