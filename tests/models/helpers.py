"""Shared fixtures for the model tests: small configurations and a probe "norm"."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

import normzoo
from normzoo.models import get_model

# name -> (field overrides giving a small model of the same structure, input shape).
# Tiny widths, shared between models: on CPU most of the test time is compiling
# the random initializers, once per distinct kernel shape. 2 groups divide
# every width; the ResNets still change width (8 -> 16) and resolution, so the
# pad and projection shortcuts are exercised.
SMALL = {
    "mnist_cnn": (dict(features=(8, 8), hidden_units=8), (4, 8, 8, 1)),
    "mnist_cnn_small": (dict(features=(8,)), (4, 4, 4, 1)),
    "cifar_cnn": (dict(features=(8, 8, 8), hidden_units=8), (4, 8, 8, 3)),
    "resnet20": (dict(widths=(8, 16, 16)), (4, 8, 8, 3)),
    "resnet18": (dict(widths=(8, 16, 16, 16)), (4, 8, 8, 3)),
    "mlp": (dict(width=8, depth=2), (4, 2, 2, 2)),
}

# Real input shapes (for shape/parameter checks with jax.eval_shape).
FULL_INPUT = {
    "mnist_cnn": (2, 28, 28, 1),
    "mnist_cnn_small": (2, 28, 28, 1),
    "cifar_cnn": (2, 32, 32, 3),
    "resnet20": (2, 32, 32, 3),
    "resnet18": (2, 32, 32, 3),
    "mlp": (2, 28, 28, 1),
}

# Models whose normalized layers all see (N, H, W, C) inputs (instance norm is defined).
SPATIAL_ONLY = ("mnist_cnn", "mnist_cnn_small", "resnet20", "resnet18")


def norms() -> dict:
  return {
      "batch": normzoo.get_norm("batch", momentum=0.9),
      "layer": normzoo.get_norm("layer"),
      "group": normzoo.get_norm("group", num_groups=2),
      "instance": normzoo.get_norm("instance"),
      "none": normzoo.get_norm("none"),
  }


def small_model(name: str, norm=None, **overrides):
  kwargs, shape = SMALL[name]
  kwargs = {**kwargs, **overrides}
  if norm is not None:
    kwargs["norm"] = norm
  return get_model(name, **kwargs), shape


def inputs(shape, seed: int = 0) -> jax.Array:
  # NumPy, not jax.random: no compilation per input shape.
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


class Probe(nn.Module):
  """A "norm" that records its input and shifts it by -SHIFT.

  The shift makes ``relu(norm(x))`` (>= 0) and ``norm(relu(x))`` (>= -SHIFT,
  with -SHIFT wherever x <= 0) distinguishable. With ``standardize`` it first
  rescales x to zero mean and unit variance over the whole tensor, so the
  signal survives 20 layers of ``relu(x - SHIFT)``.
  """
  standardize: bool = False
  SHIFT = 0.25

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    self.sow("intermediates", "norm_input", x)
    if self.standardize:
      x = (x - x.mean()) / (x.std() + 1e-6)
    return x - self.SHIFT


def flat(tree) -> dict:
  """{'a/b/c': leaf} view of a nested dict."""
  return traverse_util.flatten_dict(tree, sep="/")


def probe_inputs(model, variables, x) -> dict[str, jax.Array]:
  """Input of every Probe norm, keyed by the norm's module path."""
  _, state = model.apply(variables, x, train=False, mutable=["intermediates"])
  return {k[:-len("/norm_input")]: v[0] for k, v in flat(state["intermediates"]).items()
          if k.endswith("/norm_input")}


def init(model, shape, seed: int = 0):
  # An RBG key: its initializers compile ~5x faster on CPU than threefry's,
  # and the models do not depend on the PRNG implementation.
  return model.init(jax.random.key(seed, impl="rbg"), jnp.zeros(shape), train=False)
