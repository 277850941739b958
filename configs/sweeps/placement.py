"""Norm before vs after the activation (conv -> norm -> ReLU vs conv -> ReLU -> norm).

The original recipe normalizes the pre-activation; normalizing after the
ReLU is a common ablation. Claim tested: placement matters little for the
final accuracy at this scale (no strong claim in the literature).
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid


def get_config():
  return common.base(train_examples=5000, num_epochs=3)


def get_sweep():
  return grid(norm=["batch", "group", "layer"],
              norm_position=["before_activation", "after_activation"], seed=common.SEEDS)


def get_report():
  return dict(title="Norm placement: before vs after the activation (Fashion-MNIST)",
              claim="placing the norm before or after the ReLU changes little.")
