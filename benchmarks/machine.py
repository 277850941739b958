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


# Vendor-specified peak memory bandwidth (GB/s) by jax device_kind.
PEAK_GBPS = {"NVIDIA H200": 4800.0, "NVIDIA H100 80GB HBM3": 3350.0, "NVIDIA H100 PCIe": 2000.0,
             "NVIDIA A100-SXM4-80GB": 2039.0, "NVIDIA A100-SXM4-40GB": 1555.0,
             "NVIDIA A100 80GB PCIe": 1935.0, "NVIDIA L4": 300.0, "Tesla V100-SXM2-16GB": 900.0}


def peak_gbps() -> float:
  """The default device's datasheet memory bandwidth in GB/s (0 if unknown)."""
  return PEAK_GBPS.get(jax.devices()[0].device_kind, 0.0)


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


def write_results(path: str, rows: list[dict], **extra) -> None:
  """Writes ``{"machine": ..., "rows": rows, **extra}`` as JSON (no-op for an empty path).

  Written to a temporary name and renamed, so that a run stopped while
  writing leaves the previous complete file.
  """
  if not path:
    return
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(dict(machine=machine_description(), rows=rows, **extra), f, indent=1)
  os.replace(path + ".tmp", path)
