"""Steps to a validation target and learning-rate tolerance of the core norms.

Replaces ``norm_compare``'s speed claim and ``learning_rate``. Batch, group,
layer and no normalization at SGD learning rates 0.01 / 0.03 / 0.1 / 0.3
(100 warmup steps, then cosine), 600 steps, evaluated on the validation split
every 25 steps. The report gives the first step reaching 80 % and 85 %
validation accuracy; from it: the no-norm / BN step ratio at each norm's best
learning rate (the analogue of the BN paper's 14x) and the largest learning
rate that still reaches 85 %.

Budget: 600 steps x 128 images; 48 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

STEPS = 600


def get_config():
  return common.steps_base(STEPS, warmup_steps=100, eval_every_steps=25)


def get_sweep():
  return grid(norm=["batch", "group", "layer", "none"],
              learning_rate=[0.01, 0.03, 0.1, 0.3], seed=common.SEEDS)


def get_report():
  return dict(x="learning_rate", series="norm", logx=10, targets=[0.8, 0.85],
              baseline={"norm": "batch"}, budget_steps=STEPS,
              title="Steps to 80 % / 85 % validation accuracy vs learning rate (600 steps)",
              claim="batch norm reaches a target accuracy in fewer steps and tolerates higher "
                    "learning rates (Ioffe & Szegedy 2015: 14x fewer steps on Inception).")
