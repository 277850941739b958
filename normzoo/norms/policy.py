"""Backend policy: the implementation choices that change speed, never results.

Every such choice of the normalizers (which accurate variance formula
``use_fast_variance=True`` means, how group sums are written, whether an
undifferentiated per-example forward is fused into one pass, the backward's
fusion barriers, RMSNorm's overflow guard) is a field of one frozen
:class:`BackendPolicy`. :func:`default_policy` picks the fields per backend;
:func:`backend_policy` overrides any of them for a block of code::

    with normzoo.backend_policy(variance="two_pass", fusion_barrier=False):
      y = jitted_step(x)   # retraced: the override is part of jit's cache key

The override lives in a ``jax.make_user_context`` value, so every
``jax.jit`` (ours and the caller's) keys its cache on it: changing it after
a first trace at the same shape traces again instead of silently reusing
the old program. Normalizers also copy the policy into their static spec
when traced, so a custom VJP's backward, traced later (possibly outside the
``with`` block), keeps the choices of its forward.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import jax

__all__ = ["BackendPolicy", "backend_policy", "current_policy", "default_policy"]


@dataclasses.dataclass(frozen=True)
class BackendPolicy:
  """Implementation choices of the normalizers (hashable: it is part of static specs).

  Attributes:
    variance: what ``use_fast_variance=True`` computes: ``"checked"`` (one
      fused pass, kept where it is accurate, else a second pass chosen by
      ``lax.cond``), ``"shifted"`` (a single pass over ``x - x[0]``) or
      ``"two_pass"``. See :mod:`normzoo.norms.stats`.
    group_sum: how group norm sums channels within a group: ``"reshape"``,
      ``"block_matmul"`` (one (C, C) product), ``"grouped_matmul"`` or
      ``"auto"`` (block product up to 128 channels, grouped above).
    one_pass_forward: fuse an undifferentiated per-example forward (layer,
      instance norm) into one pass over each example where that is faster.
    fusion_barrier: ``lax.optimization_barrier`` in the batch-statistics
      backward, which keeps XLA:CPU's passes fused (and costs one on GPU).
    rms_overflow_guard: how RMSNorm handles rows whose sum of squares
      overflows: ``"cond"`` (a conditional computes scaled statistics only
      when needed) or ``"select"`` (scaled sums beside the plain ones).
    rms_fusion_barrier: the same barrier in RMSNorm's backward.
  """
  variance: str = "checked"
  group_sum: str = "auto"
  one_pass_forward: bool = True
  fusion_barrier: bool = True
  rms_overflow_guard: str = "cond"
  rms_fusion_barrier: bool = True

  def __post_init__(self) -> None:
    for name, valid in _CHOICES.items():
      value = getattr(self, name)
      if value not in valid:
        raise ValueError(f"backend policy {name}={value!r} is not valid; valid values are: "
                         f"{', '.join(map(repr, valid))}")

  def group_sum_method(self, channels: int) -> str:
    """The concrete group-sum form for ``channels`` channels."""
    if self.group_sum != "auto":
      return self.group_sum
    return "block_matmul" if channels <= 128 else "grouped_matmul"


_CHOICES: dict[str, tuple[Any, ...]] = {
    "variance": ("checked", "shifted", "two_pass"),
    "group_sum": ("auto", "reshape", "block_matmul", "grouped_matmul"),
    "one_pass_forward": (True, False),
    "fusion_barrier": (True, False),
    "rms_overflow_guard": ("cond", "select"),
    "rms_fusion_barrier": (True, False),
}

# Why each backend gets what it gets (measurements: benchmarks/RESULTS.md):
# XLA:CPU runs sibling reductions as separate passes and keeps fusions apart
# only behind barriers, so it takes the checked single pass, matrix-product
# group sums, the one-pass per-example forward, the barriers and the
# conditional overflow guard. XLA:GPU fuses sibling reductions into one
# kernel (shifted single pass, select guard), handles reshape-sums well, and
# pays a pass for each barrier; it has run conditionals by copying the
# predicate to the host, draining the queue once per normalizer (on-device
# conditionals need CUDA-graph conditional nodes, openxla/xla#6973). TPU is
# not measured: GPU's reduction choices with CPU's barriers.
_DEFAULTS = {
    "cpu": BackendPolicy(),
    "gpu": BackendPolicy(variance="shifted", group_sum="reshape", one_pass_forward=False,
                         fusion_barrier=False, rms_overflow_guard="select",
                         rms_fusion_barrier=False),
}
_OTHER = BackendPolicy(variance="shifted", group_sum="reshape", one_pass_forward=False,
                       rms_overflow_guard="select")

# A sorted tuple of (field, value) overrides; part of every jit cache key.
_OVERRIDES = jax.make_user_context(default_value=())


def default_policy(backend: str | None = None) -> BackendPolicy:
  """The policy for ``backend`` (default: ``jax.default_backend()``), before overrides."""
  return _DEFAULTS.get(backend or jax.default_backend(), _OTHER)


def current_policy() -> BackendPolicy:
  """The default policy of the default backend with the active :func:`backend_policy` overrides."""
  overrides = dict(_OVERRIDES.value)
  policy = default_policy()
  return dataclasses.replace(policy, **overrides) if overrides else policy


@contextlib.contextmanager
def backend_policy(**overrides: Any) -> Iterator[BackendPolicy]:
  """Overrides fields of the backend policy inside the ``with`` block (nests; yields the result).

  Raises:
    ValueError: an unknown field or value (the message lists the valid ones).
  """
  unknown = sorted(set(overrides) - set(_CHOICES))
  if unknown:
    raise ValueError(f"unknown backend policy field(s) {unknown}; valid fields are: "
                     f"{', '.join(sorted(_CHOICES))}")
  merged = {**dict(_OVERRIDES.value), **overrides}
  policy = dataclasses.replace(default_policy(), **merged)  # validates the values
  with _OVERRIDES(tuple(sorted(merged.items()))):
    yield policy
