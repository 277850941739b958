"""Classifiers parameterized by their normalizer: CNNs, CIFAR ResNets, an MLP, and
row-sequential transformer / RNN models.

All models share the fields of :class:`ModelBase` (``num_classes``, ``norm``,
``norm_position``, ``dtype``, ``conv``, ``kernel_init_scale``) and are called
as ``model.apply(variables, x, train=..., mutable=...)`` -> (N, num_classes)
float32 logits.
"""

from normzoo.models.cnn import CifarCNN, MnistCNN, MnistCNNSmall
from normzoo.models.layers import DEFAULT_NORM, NORM_POSITIONS, ModelBase
from normzoo.models.mlp import MLP
from normzoo.models.registry import MODELS, available_models, get_model, register_model
from normzoo.models.resnet import BasicBlock, ResNet, ResNet18, ResNet20
from normzoo.models.sequence import RowRNN, RowTransformer

__all__ = [
    "BasicBlock", "CifarCNN", "DEFAULT_NORM", "MLP", "MODELS", "MnistCNN", "MnistCNNSmall",
    "ModelBase", "NORM_POSITIONS", "ResNet", "ResNet18", "ResNet20", "RowRNN", "RowTransformer",
    "available_models",
    "get_model", "register_model",
]
