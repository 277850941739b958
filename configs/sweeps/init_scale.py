"""Sensitivity to the weight-initialization scale (x0.1 ... x10 of He/LeCun init).

Claim tested (Ioffe & Szegedy 2015): batch norm makes training much less
sensitive to the scale of the initial weights (a normalized layer's output
does not depend on the scale of its weights).
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid


def get_config():
  return common.base(train_examples=5000, num_epochs=2)


def get_sweep():
  return grid(norm=["batch", "group", "none"], kernel_init_scale=[0.1, 0.3, 1.0, 3.0, 10.0],
              seed=common.SEEDS)


def get_report():
  return dict(x="kernel_init_scale", series="norm", logx=10,
              title="Final test accuracy vs initialization scale (Fashion-MNIST)",
              claim="BN reduces the sensitivity to the initialization scale.")
