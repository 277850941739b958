"""Normalizers called outside jit compile once per shape, not once per call.

Op by op, a ``lax.cond`` traces fresh branch functions on every call, and
XLA compiled it again each time (0.1-0.35 s per layer call: an un-jitted
``model.init`` of a small ResNet took twice flax.linen's time).
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo

X = jnp.asarray(np.random.default_rng(3).normal(size=(4, 6, 6, 8)), jnp.float32)
ONES, ZEROS = jnp.ones(8), jnp.zeros(8)

CALLS = {
    "batch_norm": lambda: normzoo.batch_norm(X, ONES, ZEROS, ZEROS, ONES),
    "layer_norm": lambda: normzoo.layer_norm(X, reduction_axes=None, feature_axes=-1),
    "group_norm": lambda: normzoo.group_norm(X, ONES, ZEROS, num_groups=2),
    "instance_norm": lambda: normzoo.instance_norm(X, ONES, ZEROS),
    "rms_norm": lambda: normzoo.rms_norm(X, ONES),
    "moments": lambda: normzoo.moments(X, (0, 1, 2)),
    "grad of layer_norm": lambda: jax.grad(lambda x: jnp.sum(normzoo.layer_norm(x) ** 2))(X),
}

# Registry defaults that do not fit X's 4 examples of 8 channels.
OVERRIDES = {"group": dict(num_groups=2), "evonorm_s0": dict(num_groups=2),
             "ghost_batch": dict(virtual_batch_size=2)}


def _compiles_on_second_call(fn) -> list[str]:
  jax.block_until_ready(fn())
  messages = []
  handler = logging.Handler(logging.DEBUG)
  handler.emit = lambda record: messages.append(record.getMessage())
  logger = logging.getLogger("jax")
  logger.addHandler(handler)
  try:
    with jax.log_compiles():
      jax.block_until_ready(fn())
  finally:
    logger.removeHandler(handler)
  return [m for m in messages if "Compiling" in m]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_second_eager_call_compiles_nothing(name):
  assert not _compiles_on_second_call(CALLS[name])


@pytest.mark.parametrize("name", normzoo.available_norms())
def test_every_registered_module_applies_eagerly_without_recompiling(name):
  kwargs = dict(OVERRIDES.get(name, {}))
  if normzoo.uses_batch_statistics(normzoo.get_norm(name)):
    kwargs["use_running_average"] = False
  module = normzoo.get_norm(name, **kwargs)()
  variables = module.init(jax.random.key(0), X)
  assert not _compiles_on_second_call(
      lambda: module.apply(variables, X, mutable=["batch_stats"]))
