"""Which normalizer trains fastest? The core norms, none, and the research variants, 3 seeds.

Claim tested (Ioffe & Szegedy 2015): batch norm trains faster than the same
network without normalization; the per-example norms sit in between. The
variants (batch renorm, ghost batch norm, FRN, EvoNorm B0/S0, RMSNorm,
switchable norm) run on the same recipe with their papers' defaults, except
running-average momentum 0.9 and 8 groups (configs/default.py).
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid


def get_config():
  return common.base(train_examples=10000, num_epochs=4)


def get_sweep():
  return grid(norm=common.CORE_NORMS + common.VARIANT_NORMS, seed=common.SEEDS)


def get_report():
  return dict(title="Normalizer comparison on Fashion-MNIST (mnist_cnn, SGD 0.05)",
              claim="batch norm trains faster than no normalization (BN paper: same accuracy "
                    "in 14x fewer steps on Inception).")
