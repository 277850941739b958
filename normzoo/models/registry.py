"""Name -> model constructor registry, the model counterpart of :mod:`normzoo.norms.registry`.

``get_model('resnet20', norm=normzoo.get_norm('group', num_groups=8))``
returns an (unbound) linen module; use it as
``model.init(key, x, train=False)`` / ``model.apply(variables, x, train=...)``.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn

from normzoo.models.cnn import CifarCNN, MnistCNN, MnistCNNSmall
from normzoo.models.mlp import MLP
from normzoo.models.resnet import ResNet18, ResNet20
from normzoo.models.sequence import RowRNN, RowTransformer
from normzoo.norms.registry import module_fields

ModelConstructor = Callable[..., nn.Module]

MODELS: dict[str, ModelConstructor] = {
    "mnist_cnn": MnistCNN,
    "mnist_cnn_small": MnistCNNSmall,
    "cifar_cnn": CifarCNN,
    "resnet20": ResNet20,
    "resnet18": ResNet18,
    "mlp": MLP,
    # Images read row by row as sequences (normzoo/models/sequence.py).
    "row_transformer": RowTransformer,
    "row_rnn": RowRNN,
}


def available_models() -> list[str]:
  """Sorted names accepted by :func:`get_model`."""
  return sorted(MODELS)


def register_model(name: str, constructor: ModelConstructor) -> None:
  """Adds ``constructor`` under ``name``; refuses to silently replace one."""
  if name in MODELS and MODELS[name] is not constructor:
    raise ValueError(f"model name {name!r} is already registered to {MODELS[name]!r}")
  MODELS[name] = constructor


def get_model(name: str, **kwargs: Any) -> nn.Module:
  """Builds the model ``name`` with the given field values (``norm=``, ``num_classes=``, ...).

  Raises:
    ValueError: unknown ``name`` (the message lists valid names), a keyword
      that is not a field of the model, or an invalid ``norm_position``.
  """
  if name not in MODELS:
    raise ValueError(
        f"unknown model {name!r}; valid names are: {', '.join(available_models())}")
  constructor = MODELS[name]
  fields = module_fields(constructor) - {"parent"}
  unknown = sorted(set(kwargs) - fields)
  if fields and unknown:
    raise ValueError(f"model {name!r} does not accept argument(s) {unknown}; it accepts: "
                     f"{', '.join(sorted(fields))}")
  return constructor(**kwargs)
