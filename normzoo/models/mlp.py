"""Multi-layer perceptron: the 1d (N, C) case of normalization."""

from __future__ import annotations

import flax.linen as nn
import jax

from normzoo.models.layers import (ModelBase, check_feature_norm, dense, dropout, logits,
                                   norm_act, norm_follows)

Array = jax.Array


class MLP(ModelBase):
  """flatten -> [dense -> norm/ReLU] x depth -> dense.

  Every norm sees (N, width) feature vectors, so instance norm (which needs
  spatial axes) is refused with a ValueError; group norm needs ``num_groups``
  dividing ``width``. Defaults: 784 -> 3 x 512 -> num_classes, about 0.93M
  params.

  Attributes:
    width: units of each hidden layer.
    depth: number of hidden layers.
  """
  width: int = 512
  depth: int = 3

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    """x: (N, ...) -> (N, num_classes) float32 logits."""
    check_feature_norm(self.norm, "MLP hidden layers")
    x = x.reshape((x.shape[0], -1))
    for i in range(self.depth):
      if i:
        x = dropout(self, x, train)
      x = dense(self, x, self.width, name=f"dense_{i}", use_bias=not norm_follows(self))
      x = norm_act(self, x, train, name=f"norm_{i}")
    return logits(self, x, self.num_classes, train)
