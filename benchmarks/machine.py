"""What the benchmarks ran on, recorded next to their numbers."""

import json
import os
import platform

import jax
from absl import flags

from normzoo.train import host_memory

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
              host_allocator=host_memory.host_allocator_state())


def write_results(path: str, rows: list[dict]) -> None:
  """Writes ``{"machine": ..., "rows": rows}`` as JSON (no-op for an empty path)."""
  if not path:
    return
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(dict(machine=machine_description(), rows=rows), f, indent=1)
