"""Building blocks shared by the models: the common fields, norm/conv/dense factories.

Every model is configured by the same handful of fields (:class:`ModelConfig`)
and builds its layers through the functions here, so "which norm, where, in
which dtype, with which init" is decided in one place:

* :func:`make_norm` instantiates the normalizer constructor, filling in
  ``use_running_average`` and ``dtype`` when the module has those fields;
* :func:`norm_act` applies norm and activation in the configured order;
* :func:`conv` / :func:`dense` give a layer feeding a norm no bias, unless
  the norm is the identity or comes after the activation.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from normzoo.norms.modules import BatchNorm, Identity, InstanceNorm
from normzoo.norms.registry import instantiate_norm

Array = jax.Array
ModuleDef = Callable[..., nn.Module]
Initializer = Callable[..., Array]

NORM_POSITIONS = ("before_activation", "after_activation")

# Momentum 0.9 (PyTorch's 0.1): flax's 0.99 lags far behind the weights in the
# short runs of a normalization comparison, which distorts eval accuracy.
DEFAULT_NORM: ModuleDef = functools.partial(BatchNorm, momentum=0.9)

__all__ = [
    "DEFAULT_NORM", "NORM_POSITIONS", "ModelBase", "ModelConfig", "check_feature_norm",
    "check_norm_position", "conv", "dense", "is_identity", "logits", "make_norm", "max_pool_2x2",
    "module_class", "norm_act", "norm_follows", "scaled_init",
]


class ModelConfig(Protocol):
  """The fields the layer factories read (every model and block has them)."""
  norm: ModuleDef
  norm_position: str
  dtype: Any
  conv: ModuleDef
  kernel_init_scale: float


class ModelBase(nn.Module):
  """Fields common to all models; subclasses add their architecture fields.

  Attributes:
    num_classes: width of the logits.
    norm: normalizer constructor (``normzoo.get_norm(...)`` or any flax-style
      module class/partial); instantiated once per normalized layer.
    norm_position: ``'before_activation'`` (conv -> norm -> act) or
      ``'after_activation'`` (conv -> act -> norm).
    dtype: computation dtype (e.g. ``jnp.bfloat16``); params stay float32 and
      logits are returned as float32.
    conv: convolution constructor with ``nn.Conv``'s signature (e.g. a
      weight-standardized conv).
    kernel_init_scale: multiplies every conv/dense kernel at init (base init:
      He normal for hidden layers, LeCun normal for the logits layer).
    dropout_rate: dropout on the input of every dense layer but the first
      (the classifier head always; the MLP's inner layers too), active only
      with ``train=True``; draws from the ``'dropout'`` rng stream.
  """
  num_classes: int = 10
  norm: ModuleDef = DEFAULT_NORM
  norm_position: str = "before_activation"
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  kernel_init_scale: float = 1.0
  dropout_rate: float = 0.0

  def __post_init__(self) -> None:
    # Fail at construction, not deep inside init, on a typo in a config.
    check_norm_position(self.norm_position)
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must lie in [0, 1), got {self.dropout_rate}")
    super().__post_init__()


def check_norm_position(norm_position: str) -> None:
  if norm_position not in NORM_POSITIONS:
    raise ValueError(f"norm_position={norm_position!r} is not valid; valid values are: "
                     f"{', '.join(map(repr, NORM_POSITIONS))}")


def module_class(constructor: ModuleDef) -> Any:
  """The class behind nested ``functools.partial``s (or the constructor itself)."""
  while isinstance(constructor, functools.partial):
    constructor = constructor.func
  return constructor


def _is_subclass(constructor: ModuleDef, classes: tuple[type, ...]) -> bool:
  cls = module_class(constructor)
  return isinstance(cls, type) and issubclass(cls, classes)


def is_identity(norm: ModuleDef) -> bool:
  """Whether ``norm`` is the no-op normalizer (registry name ``'none'``)."""
  return _is_subclass(norm, (Identity,))


def check_feature_norm(norm: ModuleDef, where: str) -> None:
  """Refuses instance norm for an (N, C) input, where it has nothing to normalize over.

  Instance norm's statistics run over the spatial axes; a feature vector has
  none, so each statistic would come from one value (flax's InstanceNorm then
  silently outputs its bias; ours raises an error that does not name the
  model field to change). We name the field and the per-example alternative.
  """
  if _is_subclass(norm, (InstanceNorm, nn.InstanceNorm)):
    raise ValueError(
        f"{where}: instance norm needs spatial axes, but this layer's output is an (N, C) "
        f"feature vector. Use a norm defined on (N, C) inputs there, e.g. "
        f"normzoo.get_norm('layer') (per-example, over the features) or get_norm('none')")


def make_norm(cfg: ModelConfig, train: bool, name: str | None = None,
              norm: ModuleDef | None = None) -> nn.Module:
  """Instantiates ``norm`` (default ``cfg.norm``) for one layer.

  ``use_running_average=not train`` is passed if the module has that field
  (batch-statistics norms) and ``dtype=cfg.dtype`` if it has a ``dtype``
  field. A keyword already bound in the partial wins, so e.g.
  ``get_norm('batch', use_running_average=True)`` gives a frozen batch norm.
  """
  norm = cfg.norm if norm is None else norm
  return instantiate_norm(norm, train=train, dtype=cfg.dtype, name=name)


def norm_follows(cfg: ModelConfig, norm: ModuleDef | None = None) -> bool:
  """Whether a real norm directly follows the linear layer (so its bias is redundant).

  The bias is exactly cancelled by batch/instance norm's per-channel mean and
  is conventionally dropped before layer/group norm too; it is kept when the
  activation sits between layer and norm, or when there is no norm.
  """
  norm = cfg.norm if norm is None else norm
  return cfg.norm_position == "before_activation" and not is_identity(norm)


def norm_act(cfg: ModelConfig, x: Array, train: bool, name: str | None = None,
             norm: ModuleDef | None = None,
             activation: Callable[[Array], Array] = nn.relu) -> Array:
  """``act(norm(x))`` or ``norm(act(x))`` according to ``cfg.norm_position``."""
  check_norm_position(cfg.norm_position)
  layer = make_norm(cfg, train, name=name, norm=norm)
  if cfg.norm_position == "before_activation":
    return activation(layer(x))
  return layer(activation(x))


def scaled_init(init: Initializer, scale: float) -> Initializer:
  """``init`` with its samples multiplied by ``scale`` (std times ``scale``)."""
  if scale == 1.0:
    return init

  def scaled(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    return scale * init(key, shape, dtype)
  return scaled


# He init keeps the activation variance through ReLU layers, which matters for
# the un-normalized ('none') baseline; the logits layer has no ReLU after it.
_HIDDEN_INIT = nn.initializers.he_normal()
_HEAD_INIT = nn.initializers.lecun_normal()


def conv(cfg: ModelConfig, x: Array, features: int, kernel: int = 3, strides: int = 1,
         name: str | None = None, use_bias: bool | None = None) -> Array:
  """SAME-padded ``kernel x kernel`` conv; bias only if no norm follows directly.

  x: (N, H, W, C_in) -> (N, ceil(H/strides), ceil(W/strides), features).
  """
  if use_bias is None:
    use_bias = not norm_follows(cfg)
  layer = cfg.conv(features, kernel_size=(kernel, kernel), strides=(strides, strides),
                   padding="SAME", use_bias=use_bias, dtype=cfg.dtype,
                   kernel_init=scaled_init(_HIDDEN_INIT, cfg.kernel_init_scale), name=name)
  return layer(x)


def dense(cfg: ModelConfig, x: Array, features: int, name: str | None = None,
          use_bias: bool = True, head: bool = False) -> Array:
  """Dense layer (N, C_in) -> (N, features); ``head`` selects the logits-layer init."""
  init = _HEAD_INIT if head else _HIDDEN_INIT
  layer = nn.Dense(features, use_bias=use_bias, dtype=cfg.dtype,
                   kernel_init=scaled_init(init, cfg.kernel_init_scale), name=name)
  return layer(x)


def dropout(cfg: Any, x: Array, train: bool) -> Array:
  """``nn.Dropout(cfg.dropout_rate)`` in training mode; the identity at eval or rate 0."""
  rate = float(getattr(cfg, "dropout_rate", 0.0))
  if not rate:
    return x
  return nn.Dropout(rate, deterministic=not train)(x)


def logits(cfg: ModelConfig, x: Array, num_classes: int, train: bool = False) -> Array:
  """Classifier head (dropout on its input when training); float32 logits whatever
  the computation dtype (stable softmax/loss)."""
  x = dropout(cfg, x, train)
  return dense(cfg, x, num_classes, name="head", head=True).astype(jnp.float32)


def max_pool_2x2(x: Array) -> Array:
  """2x2 max-pooling with stride 2 over (N, H, W, C); same values as ``nn.max_pool``.

  Written as a reshape and a max over the window axes: its gradient is an
  elementwise mask that XLA fuses, while ``nn.max_pool``'s backward
  (select-and-scatter) costs 6x more on CPU than the whole forward pass
  (measured 133 ms vs 20 ms forward+backward for 128x28x28x32). Where a
  window holds several equal maxima the gradient is split between them
  rather than given to one; after a ReLU such ties are zeros, whose
  gradient the ReLU blocks anyway. Odd sizes fall back to ``nn.max_pool``.
  """
  n, h, w, c = x.shape
  if h % 2 or w % 2:
    return nn.max_pool(x, (2, 2), strides=(2, 2))
  return jnp.max(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))
