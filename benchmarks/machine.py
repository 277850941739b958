"""What the benchmarks ran on, recorded next to their numbers."""

import json
import os
import platform

# OpenMP threads sleep when idle (unless OMP_WAIT_POLICY is set): PyTorch's
# libgomp threads otherwise spin for a while after each call, on the same
# cores, and slow down whatever JAX call the interleaved timing runs next
# (instance norm forward at 128x32x32x64: 6.9 ms right after PyTorch calls,
# 4.3 ms with passive waiting; PyTorch's own time went from 14.2 to 11.4 ms).
# libgomp reads it when it is loaded (with torch, possibly by another
# library's import: tensorboardX's imports torch), so this comes first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
from absl import flags  # noqa: E402

from normzoo.train import host_memory  # noqa: E402

_TUNE_HOST_ALLOCATOR = flags.DEFINE_bool(
    "tune_host_allocator", True,
    "Apply normzoo.train.tune_host_allocator (as training runs do); --notune_host_allocator "
    "measures with glibc's defaults, where large buffers are page-faulted in on every call.")


def setup_host() -> None:
  """Applies the host-allocator flag; call at the start of a benchmark's main."""
  if _TUNE_HOST_ALLOCATOR.value:
    host_memory.tune_host_allocator()


def machine_description() -> dict:
  cpu_model = ""
  try:
    with open("/proc/cpuinfo") as f:
      cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
  except OSError:
    pass
  return dict(platform=platform.platform(), cpu=cpu_model or platform.processor(),
              cpu_count=os.cpu_count(), python=platform.python_version(), jax=jax.__version__,
              backend=jax.default_backend(), device=str(jax.devices()[0]),
              host_allocator=host_memory.host_allocator_state(),
              omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""))


def write_results(path: str, rows: list[dict]) -> None:
  """Writes ``{"machine": ..., "rows": rows}`` as JSON (no-op for an empty path)."""
  if not path:
    return
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(dict(machine=machine_description(), rows=rows), f, indent=1)
