"""Bounding the steps JAX runs ahead of the host: the 8-CPU-device hang.

With ``--xla_force_host_platform_device_count=8`` a data-parallel step is 8
executions (one per virtual device) that meet in XLA:CPU's in-process
all-reduce. JAX dispatches asynchronously, so the Python loop queues steps
far ahead of the computation. gdb stacks of the hung full-Fashion-MNIST run
(2 cores, jaxlib of 2026): 7 devices' threads wait in
``InProcessCommunicator::AllReduce`` for the 8th ("Expected 8 threads to join
the rendezvous, but not all of them arrived"), whose execution of that step
waits in ``CpuPjRtRawLoadedExecutable::Execute`` on the per-device in-flight
``xla::Semaphore``, while the async-work-runner threads that would release it
are taken by later steps' executions blocked in ``BlockUntilReady`` on the
stuck step's outputs: a thread-pool starvation deadlock inside XLA:CPU that
only a long enough queue (hundreds of steps: the full data set, not 30,000
examples) and few cores make likely. The rendezvous then aborts the process
(exit 134). Upstream, the same rendezvous message is reported for GPU
collectives (openxla/xla#22588, jax-ml/jax#22740); a search of the issue
trackers found no report of this CPU case, so the cause above rests on our
stacks only.

The workaround here: on the CPU backend with several devices the loop waits
for each step's (tiny) metrics before dispatching the next, so at most one
multi-device step is in flight and no execution can wait on a later one.
The cost is the host's dispatch time per step (about a millisecond against
steps of tens to hundreds of milliseconds on CPU). Accelerators keep full
asynchronous dispatch.
"""

from __future__ import annotations

import collections
from typing import Any

import jax


def max_inflight_steps(num_devices: int, backend: str | None = None) -> int | None:
  """1 on CPU with several devices (see the module docstring), else ``None`` (unbounded)."""
  backend = jax.default_backend() if backend is None else backend
  return 1 if backend == "cpu" and num_devices > 1 else None


class InflightLimit:
  """Blocks on the oldest dispatched output once more than ``limit`` are in flight."""

  def __init__(self, limit: int | None):
    if limit is not None and limit < 1:
      raise ValueError(f"InflightLimit: limit must be >= 1 or None, got {limit!r}")
    self.limit = limit
    self._pending: collections.deque = collections.deque()

  def add(self, outputs: Any) -> None:
    """Records ``outputs`` of a step just dispatched; returns once fewer than ``limit`` are pending.

    So when the caller dispatches its next step, at most ``limit`` steps are in flight.
    """
    if self.limit is None:
      return
    self._pending.append(outputs)
    while len(self._pending) >= self.limit:
      jax.block_until_ready(self._pending.popleft())
