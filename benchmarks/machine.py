"""Machine facts and peak memory, recorded with every benchmark line."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any


def machine_facts() -> dict[str, Any]:
    """CPU count, platform, library versions and the first GPU that torch sees (where it sees
    one; lines without ``gpu`` were measured without)."""
    import numpy
    import polars
    import torch

    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "polars": polars.__version__,
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def rss_mib(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (None when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError):
        return None
    return None


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children) in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def malloc_label(retained: bool) -> str:
    """How a benchmarked process's malloc runs, for its JSON lines: ``retained`` is whether
    it keeps freed memory for reuse (``behaviorlm.allocator``); otherwise the environment's
    own malloc settings or preloaded allocator, where it has them, else glibc's defaults.
    (Lines without the field were measured with the defaults.)"""
    from behaviorlm.allocator import OPT_OUT, user_configured

    if retained:
        return "freed memory retained"
    settings = {k: v for k, v in os.environ.items() if k != OPT_OUT}
    if user_configured(settings):
        return "the environment's malloc settings"
    return "C library defaults"
