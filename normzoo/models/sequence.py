"""Sequence models on images read row by row: 28 rows of a 28x28 image = 28 tokens of 28.

An image (N, H, W, C) becomes the sequence (N, T=H, F=W*C). The norm is
pluggable as everywhere else (``norm=`` constructor), but is always applied
to (N*T, D) token rows, so every norm gets the sequence semantics of the
literature:

* ``layer`` / ``rms``: per token, over the D features (Ba et al. 2016;
  Zhang & Sennrich 2019);
* ``batch``: per feature, over batch x tokens (its running statistics too);
* ``none``: the identity.

:class:`RowTransformer` has pre-norm blocks (``x + f(norm(x))``, plus a final
norm) or post-norm blocks (``norm(x + f(x))``, the original Transformer).
:class:`RowRNN` is an Elman RNN with the norm on the recurrent
pre-activation, ``h_t = tanh(norm(W_x x_t + W_h h_{t-1}))`` (LN-RNN of Ba et
al.); a batch-statistics norm gets one instance, hence its own statistics,
per time step (Cooijmans et al. 2017's per-time-step batch norm).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from normzoo.models.layers import ModelBase, dense, logits, make_norm
from normzoo.norms.registry import uses_batch_statistics

Array = jax.Array
BLOCKS = ("pre", "post")


def rows_as_tokens(x: Array) -> Array:
  """(N, H, W, C) -> (N, H, W * C): one token per image row."""
  if x.ndim != 4:
    raise ValueError(f"expected images (N, H, W, C), got shape {x.shape}")
  return x.reshape((x.shape[0], x.shape[1], -1))


def token_norm(cfg: ModelBase, x: Array, train: bool, name: str) -> Array:
  """The configured norm over (N*T, D) rows of ``x`` (N, T, D); see the module docstring."""
  n, t, d = x.shape
  return make_norm(cfg, train, name=name)(x.reshape((n * t, d))).reshape((n, t, d))


class RowTransformer(ModelBase):
  """Embed rows -> + learned positions -> ``depth`` blocks -> mean over tokens -> head.

  Each block: multi-head self-attention then a ReLU MLP of ``mlp_ratio *
  d_model``, each a residual branch with the norm placed by ``block``.

  Attributes:
    d_model: token width.
    num_heads: attention heads (must divide ``d_model``).
    depth: number of blocks.
    mlp_ratio: hidden width of the MLP / ``d_model``.
    block: ``'pre'`` (norm inside the residual branch) or ``'post'`` (after
      the residual sum).
  """
  d_model: int = 64
  num_heads: int = 4
  depth: int = 2
  mlp_ratio: int = 2
  block: str = "pre"

  def __post_init__(self) -> None:
    if self.block not in BLOCKS:
      raise ValueError(f"block={self.block!r} is not valid; valid values are: "
                       f"{', '.join(map(repr, BLOCKS))}")
    if self.d_model % self.num_heads:
      raise ValueError(f"num_heads={self.num_heads} must divide d_model={self.d_model}")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    """x: (N, H, W, C) images -> (N, num_classes) float32 logits."""
    x = dense(self, rows_as_tokens(x), self.d_model, name="embed")
    pos = self.param("pos_embed", nn.initializers.normal(0.02), x.shape[1:], jnp.float32)
    x = x + pos.astype(x.dtype)
    for i in range(self.depth):
      x = self._residual(x, train, f"attn_{i}", lambda y, i=i: nn.MultiHeadDotProductAttention(
          self.num_heads, dtype=self.dtype, name=f"attention_{i}")(y, y))
      x = self._residual(x, train, f"mlp_{i}", lambda y, i=i: dense(
          self, nn.relu(dense(self, y, self.mlp_ratio * self.d_model, name=f"mlp_{i}_in")),
          self.d_model, name=f"mlp_{i}_out"))
    if self.block == "pre":
      x = token_norm(self, x, train, "final_norm")
    return logits(self, x.mean(axis=1), self.num_classes, train)

  def _residual(self, x: Array, train: bool, name: str, branch) -> Array:
    if self.block == "pre":
      return x + branch(token_norm(self, x, train, f"{name}_norm"))
    return token_norm(self, x + branch(x), train, f"{name}_norm")


class RowRNN(ModelBase):
  """``h_t = tanh(norm(W_x x_t + W_h h_{t-1}))`` over the rows, then the head on ``h_T``.

  Attributes:
    hidden: state width.
    per_step_norm: one norm instance (own parameters and statistics) per time
      step; ``None`` = exactly for batch-statistics norms.
  """
  hidden: int = 128
  per_step_norm: bool | None = None

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    """x: (N, H, W, C) images -> (N, num_classes) float32 logits."""
    tokens = rows_as_tokens(x)
    per_step = (uses_batch_statistics(self.norm) if self.per_step_norm is None
                else self.per_step_norm)
    # Input projections of all steps at once; the recurrent one has no bias
    # (the input's covers it, and a following norm would cancel it anyway).
    inputs = dense(self, tokens, self.hidden, name="input")
    recurrent = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype,
                         kernel_init=nn.initializers.orthogonal(), name="recurrent")
    shared = None if per_step else make_norm(self, train, name="norm")
    h = jnp.zeros((tokens.shape[0], self.hidden), inputs.dtype)
    for t in range(tokens.shape[1]):  # 28 steps: unrolled, each may own its norm
      norm = make_norm(self, train, name=f"norm_{t}") if per_step else shared
      h = jnp.tanh(norm(inputs[:, t] + recurrent(h)))
    return logits(self, h, self.num_classes, train)
