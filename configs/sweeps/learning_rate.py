"""How high can the learning rate go? Each norm over 0.01 ... 3 (SGD, momentum 0.9).

Claim tested (Ioffe & Szegedy 2015): batch norm tolerates much higher
learning rates; without normalization the network diverges first.
Divergence is recorded per run and drawn as red crosses.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid


def get_config():
  return common.base(train_examples=5000, num_epochs=2)


def get_sweep():
  return grid(norm=["batch", "group", "layer", "none"],
              learning_rate=[0.01, 0.03, 0.1, 0.3, 1.0, 3.0], seed=common.SEEDS)


def get_report():
  return dict(x="learning_rate", series="norm", logx=10,
              title="Final test accuracy vs learning rate (Fashion-MNIST)",
              claim="BN tolerates much higher learning rates; the un-normalized net diverges "
                    "first.")
