"""The MNIST CNN recipe (:class:`normzoo.models.MnistCNN`) as a flax.nnx module.

Same architecture, initialization and parameter shapes as the linen model:
[conv 3x3 (SAME) -> norm/ReLU -> max-pool 2] per entry of ``features``,
flatten, [dense -> ReLU] (not normalized), dense logits (float32). The
normalizer is named as in the registry (``norm='group'``,
``norm_kwargs={'num_groups': 8}``) and switched between batch and running
statistics with ``model.train()`` / ``model.eval()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from normzoo.models.layers import check_norm_position, max_pool_2x2, scaled_init
from normzoo.nnx import conv as nnx_conv
from normzoo.nnx import registry as nnx_registry

Array = jax.Array

__all__ = ["MnistCNN", "make_norm"]

_HIDDEN_INIT = nnx.initializers.he_normal()
_HEAD_INIT = nnx.initializers.lecun_normal()


def make_norm(name: str, num_features: int, *, rngs: nnx.Rngs, dtype: Any = None,
              **kwargs: Any) -> nnx.Module:
  """The registry's nnx normalizer ``name``, with ``dtype`` passed when it takes one."""
  accepted = nnx_registry.constructor_arguments(nnx_registry.NORMS.get(name, object))
  if "dtype" in accepted and "dtype" not in kwargs:
    kwargs["dtype"] = dtype
  return nnx_registry.get_norm(name, num_features, rngs=rngs, **kwargs)


class MnistCNN(nnx.Module):
  """Conv blocks, then [dense -> ReLU], then the logits layer; (N, H, W, C) -> (N, classes).

  Defaults (32 and 64 channels, 128 hidden units) give 28x28x1 -> 7x7x64 ->
  128 -> 10, about 0.42M parameters. The conv bias is dropped when a norm
  directly follows the conv (``norm_position='before_activation'``), as in
  the linen model.
  """

  def __init__(self, *, norm: str = "batch", norm_kwargs: Mapping[str, Any] | None = None,
               features: Sequence[int] = (32, 64), hidden_units: int | None = 128,
               num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
               norm_position: str = "before_activation", conv: str = "standard",
               dtype: Any = jnp.float32, kernel_init_scale: float = 1.0, rngs: nnx.Rngs):
    check_norm_position(norm_position)
    conv_cls = nnx_conv.get_conv(conv)
    hidden_init = scaled_init(_HIDDEN_INIT, kernel_init_scale)
    conv_bias = not (norm_position == "before_activation" and norm != "none")
    convs, norms, channels, size = [], [], in_channels, image_size
    for width in features:
      convs.append(conv_cls(channels, width, kernel_size=(3, 3), padding="SAME",
                            use_bias=conv_bias, dtype=dtype, kernel_init=hidden_init, rngs=rngs))
      norms.append(make_norm(norm, width, rngs=rngs, dtype=dtype, **dict(norm_kwargs or {})))
      channels, size = width, size // 2
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    flat = channels * size * size
    self.dense = (nnx.Linear(flat, hidden_units, dtype=dtype, kernel_init=hidden_init, rngs=rngs)
                  if hidden_units else nnx.data(None))
    self.head = nnx.Linear(hidden_units or flat, num_classes, dtype=dtype,
                           kernel_init=scaled_init(_HEAD_INIT, kernel_init_scale), rngs=rngs)
    self.norm_position = norm_position

  def __call__(self, x: Array) -> Array:
    for conv, norm in zip(self.convs, self.norms):
      x = conv(x)
      x = (jax.nn.relu(norm(x)) if self.norm_position == "before_activation"
           else norm(jax.nn.relu(x)))
      x = max_pool_2x2(x)
    x = x.reshape((x.shape[0], -1))
    if self.dense is not None:
      x = jax.nn.relu(self.dense(x))
    return self.head(x).astype(jnp.float32)
