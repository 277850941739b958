"""Multi-process set-up and the device mesh.

Single host: nothing to initialize; the mesh spans ``jax.devices()``.

Several hosts (or processes): set ``config.distributed.coordinator_address``
(``host:port`` of process 0), ``num_processes`` and ``process_id`` (0-based,
different for each process; the same config otherwise), or
``config.distributed.auto=True`` to let ``jax.distributed.initialize()``
discover them on a cluster it knows (Cloud TPU, SLURM, ...). Every process
then runs the same command with the same ``--workdir`` (a shared file
system: checkpoints are written by all processes together, the metrics and
result files by process 0).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# The data-parallel mesh axis: the mesh below, the steps' collectives and the
# normalizers' ``axis_name`` all name it from here.
AXIS = "batch"


def maybe_initialize(config: Any) -> bool:
  """Calls ``jax.distributed.initialize`` when the config asks for it.

  Must run before anything touches a JAX device. Returns whether it did;
  calling it again in the same process is a no-op.
  """
  dist = config.get("distributed", None)
  if not dist:
    return False
  address = str(dist.get("coordinator_address", "") or "")
  auto = bool(dist.get("auto", False))
  if not address and not auto:
    return False
  if jax.distributed.is_initialized():
    return False
  if auto:
    jax.distributed.initialize()
  else:
    num_processes = int(dist.get("num_processes", 1))
    process_id = int(dist.get("process_id", 0))
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise ValueError(
          f"config.distributed needs 0 <= process_id < num_processes, got "
          f"process_id={process_id}, num_processes={num_processes}")
    jax.distributed.initialize(coordinator_address=address, num_processes=num_processes,
                               process_id=process_id)
  logging.info("jax.distributed initialized: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """1-D mesh with axis ``'batch'`` over ``devices`` (default: all, every process).

  ``jax.devices()`` is ordered by process, so process ``p``'s devices hold
  rows ``[p * b, (p + 1) * b)`` of the global batch, the rows
  :func:`normzoo.data.epoch_batches` gives process ``p``.
  """
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Splits axis 0 (examples) over the mesh."""
  return NamedSharding(mesh, P(AXIS))


def is_main_process() -> bool:
  """Process 0 writes the metrics, TensorBoard and result files."""
  return jax.process_index() == 0
