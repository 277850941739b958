"""Batch norm as a regularizer: a 2,000-image subset trained to fit, with and without dropout.

None / batch / group norm x dropout 0 / 0.5 before the head of mnist_cnn,
batch 100 (20 steps per epoch), 1,000 steps, 3 paired seeds. Test accuracy,
the train-test gap, and the dropout effect per norm as a paired difference
against dropout 0 (the interaction is the difference of those differences).

Budget: 1,000 steps x 100 images; 18 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

STEPS = 1000


def get_config():
  return common.steps_base(STEPS, batch_size=100, warmup_steps=100, train_examples=2000)


def get_sweep():
  return grid(norm=["none", "batch", "group"], dropout_rate=[0.0, 0.5], seed=common.SEEDS)


def get_report():
  return dict(x="dropout_rate", series="norm", baseline={"dropout_rate": 0.0},
              budget_steps=STEPS,
              title="Batch norm as a regularizer: 2,000 images, dropout 0 / 0.5 (1,000 steps)",
              claim="batch norm regularizes, reducing the need for dropout (Ioffe & Szegedy "
                    "2015).")
