"""Early config checks, so a bad value fails in a second with one clear message.

Names the registries own (norm, model, dataset, norm_position) are checked by
building them (:mod:`normzoo.train.build`, :func:`normzoo.data.load_dataset`),
which raise ``ValueError`` listing the valid names.
"""

from __future__ import annotations

from typing import Any

from normzoo.train.optim import OPTIMIZERS, SCHEDULES, WEIGHT_DECAY_MASKS

REQUIRED = ("dataset", "data_dir", "model", "norm", "norm_kwargs", "norm_position", "batch_size",
            "num_epochs", "optimizer", "learning_rate", "momentum", "weight_decay",
            "lr_schedule", "warmup_epochs", "seed", "sync_batch_stats", "train_examples",
            "test_examples", "half_precision", "checkpoint_every_epochs")


def _fail(message: str) -> None:
  raise ValueError(f"invalid config: {message}")


def _number(config: Any, name: str, low: float | None = None, high: float | None = None,
            integer: bool = False, low_open: bool = False, high_open: bool = False) -> None:
  value = config[name]
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    _fail(f"{name} must be a number, got {value!r}")
  if integer and value != int(value):
    _fail(f"{name} must be an integer, got {value!r}")
  if low is not None and (value <= low if low_open else value < low):
    _fail(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
  if high is not None and (value >= high if high_open else value > high):
    _fail(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def _choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
  if config.get(name) not in choices:
    _fail(f"unknown {name} {config.get(name)!r}; valid names are: {', '.join(choices)}")


def validate_config(config: Any, num_devices: int) -> None:
  """Raises ``ValueError('invalid config: ...')`` for the first bad value found.

  Args:
    config: the experiment ConfigDict.
    num_devices: devices the global batch is split over (all processes).
  """
  missing = [k for k in REQUIRED if k not in config]
  if missing:
    _fail(f"missing field(s) {missing}; start from configs/default.py")
  _number(config, "num_epochs", 1, integer=True)
  _number(config, "batch_size", 1, integer=True)
  if config.batch_size % num_devices:
    _fail(f"batch_size {config.batch_size} is not divisible by the {num_devices} devices "
          f"(all processes); use a multiple of {num_devices}")
  _choice(config, "optimizer", OPTIMIZERS)
  _choice(config, "lr_schedule", SCHEDULES)
  if "weight_decay_mask" in config:
    _choice(config, "weight_decay_mask", WEIGHT_DECAY_MASKS)
  _number(config, "learning_rate", 0, low_open=True)
  _number(config, "momentum", 0, 1, high_open=True)
  _number(config, "weight_decay", 0)
  _number(config, "warmup_epochs", 0)
  if config.warmup_epochs >= config.num_epochs and config.warmup_epochs > 0:
    _fail(f"warmup_epochs={config.warmup_epochs} must be < num_epochs={config.num_epochs}")
  _number(config, "train_examples", 0, integer=True)
  _number(config, "test_examples", 0, integer=True)
  _number(config, "checkpoint_every_epochs", 0, integer=True)
  for name in ("eval_every_epochs",):
    if name in config:
      _number(config, name, 1, integer=True)
  if "label_smoothing" in config:
    _number(config, "label_smoothing", 0, 1, high_open=True)
  if "log_every_steps" in config:
    _number(config, "log_every_steps", 0, integer=True)
  if "divergence_loss_bound" in config:
    _number(config, "divergence_loss_bound", 0, low_open=True)
  for name in ("eval_every_steps", "validation_examples"):
    if name in config:
      _number(config, name, 0, integer=True)
  if "dropout_rate" in config:
    _number(config, "dropout_rate", 0, 1, high_open=True)
  if "kernel_init_scale" in config:
    _number(config, "kernel_init_scale", 0, low_open=True)
  if "precise_bn_batches" in config:
    _number(config, "precise_bn_batches", 0, integer=True)
    if config.precise_bn_batches and num_devices > 1 and not config.sync_batch_stats:
      _fail("precise_bn_batches needs sync_batch_stats=True on several devices (population "
            "statistics are those of the global batch)")
  if "tune_host_allocator" in config and not isinstance(config.tune_host_allocator, bool):
    _fail(f"tune_host_allocator must be True or False, got {config.tune_host_allocator!r}")
  if "conv" in config:
    from normzoo.norms.conv import available_convs
    _choice(config, "conv", tuple(available_convs()))
  if config.lr_schedule == "step":
    boundaries = list(config.get("lr_boundaries_epochs", ()) or ())
    if any(not isinstance(b, (int, float)) or b <= 0 for b in boundaries) or \
        boundaries != sorted(boundaries):
      _fail(f"lr_boundaries_epochs must be increasing positive epochs, got {boundaries}")
    _number(config, "lr_decay_factor", 0, low_open=True)
  kwargs = config.get("norm_kwargs")
  if kwargs is not None and not hasattr(kwargs, "keys"):
    _fail(f"norm_kwargs must be a dict such as {{'num_groups': 8}}, got {kwargs!r}")
