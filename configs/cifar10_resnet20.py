"""CIFAR-10 with ResNet-20 (He et al. 2016): the cifar10 recipe on resnet20.

SGD lr 0.1, momentum 0.9, weight decay 5e-4 (1e-4 in the paper; 5e-4 with
cosine works as well or better at 200 epochs), batch 128, crop + flip,
cosine schedule over 200 epochs.
"""

from normzoo.configs import cifar10


def get_config():
  c = cifar10.get_config()
  c.model = "resnet20"
  return c
