"""CIFAR-10 with cifar_cnn: SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128.

Random crop (pad 4) + horizontal flip, 200 epochs, cosine decay to 0 (no
warmup; set ``--config.lr_schedule=step`` for the classic x0.1 drops at epochs
100 and 150). Needs ``--config.data_dir`` pointing at the CIFAR-10 python
batches.
"""

from normzoo.configs import default


def get_config():
  c = default.get_config()
  c.dataset = "cifar10"
  c.model = "cifar_cnn"
  c.norm = "batch"
  c.batch_size = 128
  c.num_epochs = 200
  c.optimizer = "sgd"
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.weight_decay = 5e-4
  c.lr_schedule = "cosine"
  c.lr_boundaries_epochs = (100, 150)
  c.lr_decay_factor = 0.1
  c.checkpoint_every_epochs = 10
  return c
