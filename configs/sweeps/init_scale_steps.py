"""Sensitivity to the initialization scale at each norm's best learning rate, 600 steps.

``init_scale`` re-run with each norm at its best learning rate from the
steps_to_target report (``common.BEST_LR``; fill it in from that report
first) and a budget in steps.

Budget: 600 steps x 128 images; 45 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid, product

STEPS = 600


def get_config():
  return common.steps_base(STEPS, warmup_steps=100)


def get_sweep():
  norms = [dict(norm=n, learning_rate=common.BEST_LR[n]) for n in ("batch", "group", "none")]
  return product(norms, grid(kernel_init_scale=[0.1, 0.3, 1.0, 3.0, 10.0], seed=common.SEEDS))


def get_report():
  return dict(x="kernel_init_scale", series="norm", logx=10, baseline={"kernel_init_scale": 1.0},
              budget_steps=STEPS,
              title="Final test accuracy vs initialization scale at each norm's best lr",
              claim="BN reduces the sensitivity to the initialization scale.")
