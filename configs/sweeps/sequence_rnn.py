"""Normalization in an RNN on row-sequential Fashion-MNIST: LayerNorm vs per-step BatchNorm.

An Elman RNN (128 units) with the norm on the recurrent pre-activation
(normzoo/models/sequence.py): layer norm (Ba et al. 2016), batch norm with
its own statistics per time step (Cooijmans et al. 2017), and none. AdamW
at two learning rates (100 warmup steps, then cosine), 1,000 steps, 2 seeds.

Budget: 1,000 steps x 128 images; 12 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

STEPS = 1000


def get_config():
  return common.sequence_base("row_rnn", STEPS)


def get_sweep():
  return grid(norm=["layer", "batch", "none"], learning_rate=[1e-3, 3e-3], seed=[0, 1])


def get_report():
  return dict(x="learning_rate", series="norm", logx=10, targets=[0.8, 0.85],
              y=["test_accuracy", "test_accuracy_batch_stats"], baseline={"norm": "none"},
              budget_steps=STEPS,
              title="RNN on row-sequential Fashion-MNIST: layer vs per-step batch norm",
              claim="normalizing the recurrent pre-activation speeds up RNN training "
                    "(Ba et al. 2016; Cooijmans et al. 2017).")
