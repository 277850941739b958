"""Norm before vs after the activation, with the head confound removed.

In ``placement``'s after-activation arm the un-normalized dense layers see
normalized signed features, in the before arm raw ReLU outputs, so only one
arm normalizes the head's input. Here each placement runs with the head as
it is and with a LayerNorm after the flatten in BOTH arms
(``model_kwargs.flatten_norm``). BN and LN, 1,000 steps, 3 paired seeds.

Budget: 1,000 steps x 128 images; 24 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

STEPS = 1000


def get_config():
  return common.steps_base(STEPS, warmup_steps=100)


def get_sweep():
  return grid(norm=["batch", "layer"],
              norm_position=["before_activation", "after_activation"],
              **{"model_kwargs.flatten_norm": ["", "layer"]}, seed=common.SEEDS)


def get_report():
  return dict(baseline={"norm_position": "before_activation"}, budget_steps=STEPS,
              title="Norm placement with and without a LayerNorm before the head (1,000 steps)",
              claim="placing the norm before or after the ReLU changes little once both arms "
                    "feed the head normalized features.")
