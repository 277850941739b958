"""What the benchmarks ran on, recorded next to their numbers."""

import os
import platform

import jax


def machine_description() -> dict:
  cpu_model = ""
  try:
    with open("/proc/cpuinfo") as f:
      cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
  except OSError:
    pass
  return dict(platform=platform.platform(), cpu=cpu_model or platform.processor(),
              cpu_count=os.cpu_count(), python=platform.python_version(), jax=jax.__version__,
              backend=jax.default_backend(), device=str(jax.devices()[0]))
