"""Learning-rate schedules and optax optimizers built from a config.

Schedules are functions of the optimizer step (one step = one global batch);
epochs in the config are turned into steps with ``steps_per_epoch``.

Config fields read: ``optimizer`` (sgd | adam | adamw), ``learning_rate``,
``momentum``, ``nesterov``, ``weight_decay``, ``weight_decay_mask``
(all | kernels), ``lr_schedule`` (constant | cosine | step),
``warmup_epochs``, ``num_epochs``, ``lr_boundaries_epochs``,
``lr_decay_factor``, ``adam_b1``, ``adam_b2``, ``adam_eps`` (missing optional
fields take the defaults below).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
WEIGHT_DECAY_MASKS = ("all", "kernels")


def _get(config: Any, name: str, default: Any) -> Any:
  return config.get(name, default) if hasattr(config, "get") else getattr(config, name, default)


def make_schedule(config: Any, steps_per_epoch: int) -> optax.Schedule:
  """Returns ``step -> learning rate``: optional linear warmup, then the main schedule.

  * ``constant``: ``learning_rate``.
  * ``cosine``: cosine decay from ``learning_rate`` to 0 over the steps left
    after warmup.
  * ``step``: ``learning_rate * lr_decay_factor ** k`` after the ``k``-th
    boundary of ``lr_boundaries_epochs`` (epochs counted from the start of
    training, warmup included).
  * ``warmup_epochs > 0``: linear ramp from 0 to ``learning_rate`` over that
    many epochs (may be fractional), then the main schedule, which for
    ``cosine`` starts at the end of warmup.
  """
  name = str(_get(config, "lr_schedule", "constant"))
  base_lr = float(config.learning_rate)
  total_steps = int(config.num_epochs) * steps_per_epoch
  warmup_steps = int(round(float(_get(config, "warmup_epochs", 0.0)) * steps_per_epoch))
  if name not in SCHEDULES:
    raise ValueError(f"unknown lr_schedule {name!r}; valid names are: {', '.join(SCHEDULES)}")
  if warmup_steps >= total_steps and warmup_steps > 0:
    raise ValueError(
        f"warmup_epochs={_get(config, 'warmup_epochs', 0)} covers the whole run of "
        f"num_epochs={config.num_epochs}; use fewer warmup epochs")

  if name == "constant":
    main = optax.constant_schedule(base_lr)
  elif name == "cosine":
    main = optax.cosine_decay_schedule(base_lr, decay_steps=max(total_steps - warmup_steps, 1))
  else:
    boundaries = [int(round(float(e) * steps_per_epoch))
                  for e in _get(config, "lr_boundaries_epochs", ())]
    factor = float(_get(config, "lr_decay_factor", 0.1))
    # join_schedules hands the main schedule ``step - warmup_steps``; shift the
    # boundaries so they stay at absolute epochs.
    main = optax.piecewise_constant_schedule(
        base_lr, {b - warmup_steps: factor for b in boundaries})
  if warmup_steps == 0:
    return main
  warmup = optax.linear_schedule(0.0, base_lr, transition_steps=warmup_steps)
  return optax.join_schedules([warmup, main], boundaries=[warmup_steps])


def _kernel_mask(params: Any) -> Any:
  # Conv/dense kernels have >= 2 dims; biases and norm scale/bias have 1.
  return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def make_optimizer(config: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
  """Returns the optax optimizer named by ``config.optimizer``.

  Weight decay for ``sgd`` and ``adam`` is L2 regularization: ``weight_decay
  * params`` is added to the gradient before momentum / Adam scaling (what
  PyTorch's ``weight_decay`` does). ``adamw`` uses decoupled decay (optax's
  ``adamw``, decay scaled by the learning rate). ``weight_decay_mask='kernels'``
  exempts 1-D parameters (biases, normalizer scale and bias).
  """
  name = str(config.optimizer)
  weight_decay = float(_get(config, "weight_decay", 0.0))
  mask_name = str(_get(config, "weight_decay_mask", "all"))
  if mask_name not in WEIGHT_DECAY_MASKS:
    raise ValueError(f"unknown weight_decay_mask {mask_name!r}; valid names are: "
                     f"{', '.join(WEIGHT_DECAY_MASKS)}")
  mask = None if mask_name == "all" else _kernel_mask

  if name == "sgd":
    momentum = float(_get(config, "momentum", 0.0))
    tx = optax.sgd(schedule, momentum=momentum or None,
                   nesterov=bool(_get(config, "nesterov", False)))
  elif name in ("adam", "adamw"):
    kwargs = dict(b1=float(_get(config, "adam_b1", 0.9)), b2=float(_get(config, "adam_b2", 0.999)),
                  eps=float(_get(config, "adam_eps", 1e-8)))
    if name == "adamw":
      return optax.adamw(schedule, weight_decay=weight_decay, mask=mask, **kwargs)
    tx = optax.adam(schedule, **kwargs)
  else:
    raise ValueError(f"unknown optimizer {name!r}; valid names are: {', '.join(OPTIMIZERS)}")
  if weight_decay == 0.0:
    return tx
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=mask), tx)
