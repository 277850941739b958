"""Host-memory allocator settings that take page faults out of XLA:CPU steps.

XLA:CPU allocates every call's output and temporary buffers with ``malloc``.
glibc serves an allocation above its mmap threshold (at most 32 MiB by
default) with fresh pages from the kernel and unmaps them again on ``free``,
and it trims freed memory from the top of its heaps; either way the next
call page-faults the same buffers in again, one fault per 4 KiB page. On the
2-core reference machine a jitted ``x * 2`` of a 32 MiB float32 array took
8,193 minor page faults and 10.3 ms per call; after
:func:`tune_host_allocator`, 0 faults and 1.7 ms. A one-epoch Fashion-MNIST
run trained at 2,400-2,480 images/s instead of 1,540-1,750, ResNet-20 steps
at 1.07-1.15x the images/s (``benchmarks/RESULTS.md``). With another
heavy process sharing the 2 cores, 2,000-6,600 of the ``x * 2`` faults per
call remained (plain ``malloc``/``free`` cycles of 32 MiB: 8,193 -> 0
faults either way).

The settings (glibc ``mallopt``), each measured to be needed for the last
faults to go: buffers below 1 GiB come from the heap instead of ``mmap``;
the heap is trimmed only when 2 GiB at its top are free; it grows 256 MiB
at a time; and all threads share one arena (XLA's worker threads otherwise
get arenas of their own, which are trimmed separately).

The cost: memory the process frees stays with it for reuse, so its resident
size stays near its peak. The settings are process-wide; they change
nothing on accelerators (device buffers are not ``malloc``-ed) and are
skipped where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

SETTINGS = {
    "mmap_threshold": (_M_MMAP_THRESHOLD, 1 << 30),
    "trim_threshold": (_M_TRIM_THRESHOLD, 1 << 31),
    "top_pad": (_M_TOP_PAD, 1 << 28),
    "arena_max": (_M_ARENA_MAX, 1),
}

_applied: dict[str, int] | None = None


def _glibc() -> ctypes.CDLL | None:
  if not sys.platform.startswith("linux"):
    return None
  try:
    libc = ctypes.CDLL(None)
    libc.gnu_get_libc_version  # only glibc has it (not musl)
  except (OSError, AttributeError):
    return None
  return libc


def tune_host_allocator() -> dict[str, int] | None:
  """Applies :data:`SETTINGS` to this process's glibc ``malloc``; idempotent.

  Returns the applied settings (name -> value), or None where the C library
  is not glibc and nothing was changed.

  Raises:
    RuntimeError: glibc refused a setting (the settings before it stay).
  """
  global _applied
  if _applied is not None:
    return dict(_applied)
  libc = _glibc()
  if libc is None:
    return None
  for name, (option, value) in SETTINGS.items():
    if libc.mallopt(option, value) != 1:
      raise RuntimeError(f"glibc mallopt refused {name}={value}")
  _applied = {name: value for name, (_, value) in SETTINGS.items()}
  return dict(_applied)


def host_allocator_state() -> str:
  """``"tuned"`` after :func:`tune_host_allocator` applied its settings, else ``"default"``."""
  return "default" if _applied is None else "tuned"
