"""Plain (non-residual) convolutional classifiers for MNIST and CIFAR.

Each conv block is conv 3x3 (SAME) -> norm/ReLU (in ``norm_position``
order) -> max-pool 2x2, so a 28x28 image leaves a block at 14x14, a 32x32
one at 16x16.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from normzoo.models.layers import (ModelBase, ModelConfig, ModuleDef, check_feature_norm, conv,
                                   dense, logits, make_norm, max_pool_2x2, norm_act,
                                   norm_follows)
from normzoo.norms.registry import get_norm

Array = jax.Array


def conv_blocks(cfg: ModelConfig, x: Array, features: Sequence[int], train: bool) -> Array:
  """[conv 3x3 -> norm/act -> max-pool 2] per entry of ``features``.

  x: (N, H, W, C) -> (N, H / 2^k, W / 2^k, features[-1]) for k = len(features).
  """
  for i, width in enumerate(features):
    x = conv(cfg, x, width, name=f"conv_{i}")
    x = norm_act(cfg, x, train, name=f"norm_{i}")
    x = max_pool_2x2(x)
  return x


class MnistCNN(ModelBase):
  """Conv blocks, then [dense -> ReLU] (not normalized), then the logits layer.

  Defaults: blocks of 32 and 64 channels and a 128-unit hidden layer
  (28x28x1 -> 7x7x64 -> 128 -> num_classes); about 0.42M params.

  Attributes:
    features: channels of each conv block.
    hidden_units: width of the hidden dense layer; None for none.
    flatten_norm: a registry norm name (e.g. ``'layer'``) applied to the
      flattened conv features, whatever ``norm`` and ``norm_position`` are;
      ``''`` for none. With it, the head sees normalized inputs in both
      placements (the placement sweep's head confound removed).
  """
  features: tuple[int, ...] = (32, 64)
  hidden_units: int | None = 128
  flatten_norm: str = ""

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    """x: (N, H, W, C) images -> (N, num_classes) float32 logits."""
    x = conv_blocks(self, x, self.features, train)
    x = x.reshape((x.shape[0], -1))
    if self.flatten_norm:
      x = make_norm(self, train, name="flatten_norm", norm=get_norm(self.flatten_norm))(x)
    if self.hidden_units:
      x = nn.relu(dense(self, x, self.hidden_units, name="dense_0"))
    return logits(self, x, self.num_classes, train)


class MnistCNNSmall(MnistCNN):
  """The classic small MNIST net: conv 3x3x32 -> norm/ReLU -> max-pool 2 -> flatten -> dense.

  28x28x1 -> 14x14x32 -> num_classes; about 63k params.
  """
  features: tuple[int, ...] = (32,)
  hidden_units: int | None = None


class CifarCNN(ModelBase):
  """Three conv blocks (64, 128, 256), then dense 1024 -> norm/ReLU -> logits layer.

  32x32x3 -> 4x4x256 -> 1024 -> num_classes; about 4.6M params.

  The dense layer's norm sees (N, 1024) feature vectors: batch, layer and
  group norm (any ``num_groups`` dividing 1024) are defined there, instance
  norm is not (no spatial axes). ``dense_norm`` picks that norm separately;
  None means ``norm``, and raises a ValueError if ``norm`` is instance norm
  rather than silently substituting another norm.

  Attributes:
    features: channels of each conv block.
    hidden_units: width of the normalized dense layer.
    dense_norm: normalizer of the dense layer; None for ``norm``.
  """
  features: tuple[int, ...] = (64, 128, 256)
  hidden_units: int = 1024
  dense_norm: ModuleDef | None = None

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    """x: (N, H, W, C) images -> (N, num_classes) float32 logits."""
    dense_norm = self.norm if self.dense_norm is None else self.dense_norm
    check_feature_norm(dense_norm, "CifarCNN dense layer (set dense_norm=...)")
    x = conv_blocks(self, x, self.features, train)
    x = x.reshape((x.shape[0], -1))
    x = dense(self, x, self.hidden_units, name="dense_0",
              use_bias=not norm_follows(self, dense_norm))
    x = norm_act(self, x, train, name="dense_norm_0", norm=dense_norm)
    return logits(self, x, self.num_classes, train)
