"""CIFAR ResNets (He et al., 2016) built from basic blocks.

* :class:`ResNet20`: the paper's CIFAR net, 3 stages x 3 blocks of 16/32/64
  channels, 0.27M params, with the paper's option A shortcut (parameter-free:
  stride-2 subsampling and zero channels) where the shape changes.
* :class:`ResNet18`: the usual CIFAR variant of ResNet-18 (3x3 stem conv of 64,
  no max-pool, 4 stages x 2 blocks of 64/128/256/512), 11.2M params, with
  projection shortcuts (1x1 conv -> norm) where the shape changes.

Basic block, ``before_activation`` (the paper's order)::

    out = relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))

``after_activation`` swaps every norm with the ReLU that follows it; the
second ReLU comes after the addition, so norm2 normalizes the block output::

    out = norm2(relu(conv2(norm1(relu(conv1(x)))) + shortcut(x)))

A projection shortcut has no activation, so it is conv -> norm in both modes.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from normzoo.models.layers import (DEFAULT_NORM, ModelBase, ModuleDef, conv, is_identity, logits,
                                   make_norm, norm_act)

Array = jax.Array

SHORTCUTS = ("pad", "projection")


class BasicBlock(nn.Module):
  """Two 3x3 convs and a shortcut; x: (N, H, W, C) -> (N, H/strides, W/strides, features).

  Attributes:
    features: output channels.
    strides: stride of the first conv (and of the shortcut).
    shortcut: ``'pad'`` (option A) or ``'projection'`` (option B), used only
      when the shape changes; otherwise the shortcut is the identity.
    norm, norm_position, dtype, conv, kernel_init_scale: as in the model.
  """
  features: int
  strides: int = 1
  shortcut: str = "projection"
  norm: ModuleDef = DEFAULT_NORM
  norm_position: str = "before_activation"
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  kernel_init_scale: float = 1.0

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    check_shortcut(self.shortcut)
    residual = self._shortcut(x, train)
    y = conv(self, x, self.features, strides=self.strides, name="conv1")
    y = norm_act(self, y, train, name="norm1")
    y = conv(self, y, self.features, name="conv2")
    if self.norm_position == "before_activation":
      return nn.relu(make_norm(self, train, name="norm2")(y) + residual)
    return make_norm(self, train, name="norm2")(nn.relu(y + residual))

  def _shortcut(self, x: Array, train: bool) -> Array:
    if self.strides == 1 and x.shape[-1] == self.features:
      return x
    if self.shortcut == "projection":
      # Always conv -> norm (no activation in between): no bias unless no norm.
      y = conv(self, x, self.features, kernel=1, strides=self.strides, name="shortcut_conv",
               use_bias=is_identity(self.norm))
      return make_norm(self, train, name="shortcut_norm")(y)
    extra = self.features - x.shape[-1]
    if extra < 0:
      raise ValueError(f"shortcut='pad' cannot reduce channels ({x.shape[-1]} -> "
                       f"{self.features}); use shortcut='projection'")
    # Option A: subsample like the stride-2 conv, zero-fill the new channels.
    y = x[:, ::self.strides, ::self.strides, :]
    return jnp.pad(y, ((0, 0), (0, 0), (0, 0), (0, extra))).astype(self.dtype)


def check_shortcut(shortcut: str) -> None:
  if shortcut not in SHORTCUTS:
    raise ValueError(f"shortcut={shortcut!r} is not valid; valid values are: "
                     f"{', '.join(map(repr, SHORTCUTS))}")


class ResNet(ModelBase):
  """CIFAR-style ResNet: 3x3 stem conv -> norm/ReLU -> stages of basic blocks -> GAP -> dense.

  The first block of every stage but the first halves the resolution.
  x: (N, H, W, C) -> (N, num_classes) float32 logits.

  Attributes:
    stage_sizes: blocks per stage.
    widths: channels per stage (the stem has ``widths[0]``).
    shortcut: ``'pad'`` (option A) or ``'projection'`` (option B).
  """
  stage_sizes: tuple[int, ...] = (3, 3, 3)
  widths: tuple[int, ...] = (16, 32, 64)
  shortcut: str = "pad"

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    """x: (N, H, W, C) images -> (N, num_classes) float32 logits."""
    check_shortcut(self.shortcut)
    if len(self.stage_sizes) != len(self.widths):
      raise ValueError(f"stage_sizes={self.stage_sizes} and widths={self.widths} must have the "
                       f"same length (one entry per stage)")
    x = conv(self, x, self.widths[0], name="stem_conv")
    x = norm_act(self, x, train, name="stem_norm")
    for stage, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for block in range(blocks):
        x = BasicBlock(width, strides=2 if stage > 0 and block == 0 else 1,
                       shortcut=self.shortcut, norm=self.norm, norm_position=self.norm_position,
                       dtype=self.dtype, conv=self.conv, kernel_init_scale=self.kernel_init_scale,
                       name=f"stage{stage + 1}_block{block}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return logits(self, x, self.num_classes, train)


class ResNet20(ResNet):
  """He et al.'s CIFAR ResNet-20 (n=3), option A shortcuts; 0.27M params."""
  stage_sizes: tuple[int, ...] = (3, 3, 3)
  widths: tuple[int, ...] = (16, 32, 64)
  shortcut: str = "pad"


class ResNet18(ResNet):
  """ResNet-18, CIFAR variant (3x3 stem, no max-pool), projection shortcuts; 11.2M params."""
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
  widths: tuple[int, ...] = (64, 128, 256, 512)
  shortcut: str = "projection"
