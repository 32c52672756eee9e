"""Keep freed memory in the process for reuse, so repeated tensor work does not page-fault.

Torch allocates CPU tensors with ``malloc``. With its defaults, glibc's malloc hands large
blocks back to the kernel when they are freed: blocks above its mmap threshold (128 KiB at
first, raised up to 32 MiB as it sees large blocks freed) are unmapped, and free space above
the trim threshold at the top of the heap is trimmed. The next large tensor then gets fresh
pages, which the kernel zero-fills on first touch, one page fault per 4 KiB. Work that makes
many large temporaries of varying sizes pays this again on every call: one occlusion
explanation of a 200-event timeline (about 200 batched deletions, ``behaviorlm.explain``)
made 2,900 to 3,900 page faults and spent 8 to 9 % of its CPU time in the kernel
(``benchmarks/explain_speed.py --default-malloc``; ``benchmarks/RESULTS.md``).

:func:`retain_freed_memory` sets both thresholds once for the process: blocks up to 32 MiB
come from the heap, and up to 128 MiB of free space stays at its top, so the same pages
serve call after call. Larger blocks are still mapped and unmapped as before, which bounds
what the process keeps. The ``behaviorlm`` command calls it at start
(``BEHAVIORLM_MALLOC=default`` in the environment keeps the C library's defaults), except
``behaviorlm serve``, which does only with ``--retain-freed-memory``: the server's
recommendations gained nothing from it (``benchmarks/RESULTS.md``). A Python program that
explains many timelines can call it itself.

It changes glibc's own malloc only: under an allocator preloaded in its place (jemalloc,
tcmalloc, mimalloc through ``LD_PRELOAD``) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping

#: ``mallopt`` parameters (glibc's ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc refuses an mmap threshold above this (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64 bits).
MAX_MMAP_THRESHOLD_MIB = 32
#: Environment variables through which a user sets these themselves (then left alone).
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
#: The same settings as ``GLIBC_TUNABLES`` entries.
USER_TUNABLES = (
    "glibc.malloc.mmap_threshold",
    "glibc.malloc.trim_threshold",
    "glibc.malloc.top_pad",
)
#: ``BEHAVIORLM_MALLOC=default`` keeps the C library's defaults (other values are ignored).
OPT_OUT = "BEHAVIORLM_MALLOC"
#: Allocators that replace glibc's malloc when preloaded (``LD_PRELOAD``).
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")


def user_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment sets malloc itself, so :func:`retain_freed_memory` leaves it.

    True where the environment sets glibc's thresholds (:data:`USER_SETTINGS`, or the same
    entries of ``GLIBC_TUNABLES``), preloads another allocator (:data:`PRELOADED`), or asks
    for the C library's defaults (``BEHAVIORLM_MALLOC=default``).

    Parameters
    ----------
    environ : mapping, optional
        The environment to read (default ``os.environ``).

    Returns
    -------
    bool

    Examples
    --------
    >>> user_configured({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"})
    True
    >>> user_configured({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})  # not a threshold
    False
    >>> user_configured({"PATH": "/bin"}), user_configured({"BEHAVIORLM_MALLOC": "default"})
    (False, True)
    """
    env = os.environ if environ is None else environ
    tunables = env.get("GLIBC_TUNABLES", "")
    return (
        any(name in env for name in USER_SETTINGS)
        or any(name in tunables for name in USER_TUNABLES)
        or any(name in env.get("LD_PRELOAD", "") for name in PRELOADED)
        or env.get(OPT_OUT, "") == "default"
    )


def is_glibc() -> bool:
    """Whether this process runs on Linux with glibc, whose ``mallopt`` this module sets."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def retain_freed_memory(mmap_threshold_mib: int = 32, trim_threshold_mib: int = 128) -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    Blocks up to ``mmap_threshold_mib`` come from the heap instead of their own mappings, and
    up to ``trim_threshold_mib`` of free space stays at the top of the heap. Process-wide and
    for the rest of the process's life; the cost is memory the process holds after a peak
    (at most the free space between live blocks and ``trim_threshold_mib`` at the top).

    Parameters
    ----------
    mmap_threshold_mib : int
        Largest block served from the heap, 1 to 32 MiB (glibc's limit).
    trim_threshold_mib : int
        Free space kept at the top of the heap, 1 to 2047 MiB (a C ``int`` of bytes).

    Returns
    -------
    bool
        True where the settings took effect; False, with nothing changed, on a C library
        other than glibc (macOS, musl) and where :func:`user_configured` finds the
        environment's own malloc settings (they win). False also where glibc refuses a
        setting; the mmap threshold may then be set without the trim threshold.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> blm.retain_freed_memory()  # doctest: +SKIP
    True
    >>> blm.retain_freed_memory(trim_threshold_mib=4096)
    Traceback (most recent call last):
    ...
    ValueError: trim_threshold_mib must be 1..2047, got 4096
    """
    if not 1 <= mmap_threshold_mib <= MAX_MMAP_THRESHOLD_MIB:
        raise ValueError(
            f"mmap_threshold_mib must be 1..{MAX_MMAP_THRESHOLD_MIB}, got {mmap_threshold_mib}"
        )
    if not 1 <= trim_threshold_mib <= 2047:
        raise ValueError(f"trim_threshold_mib must be 1..2047, got {trim_threshold_mib}")
    if not is_glibc() or user_configured():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mib = 1 << 20
    return bool(
        mallopt(M_MMAP_THRESHOLD, mmap_threshold_mib * mib)
        and mallopt(M_TRIM_THRESHOLD, trim_threshold_mib * mib)
    )
