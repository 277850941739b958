"""MNIST: the Fashion-MNIST recipe on MNIST (needs ``--config.data_dir`` with the IDX files)."""

from normzoo.configs import fashion_mnist


def get_config():
  c = fashion_mnist.get_config()
  c.dataset = "mnist"
  c.num_epochs = 5
  return c
