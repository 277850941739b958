"""The model registry, and construction-time validation."""

import pytest

import normzoo
from normzoo import models
from normzoo.models import (MLP, CifarCNN, MnistCNN, MnistCNNSmall, ResNet18, ResNet20,
                            available_models, get_model, register_model)
from tests.models import helpers


def test_available_models():
  assert available_models() == sorted(
      ["cifar_cnn", "mlp", "mnist_cnn", "mnist_cnn_small", "resnet18", "resnet20", "row_rnn",
       "row_transformer"])


@pytest.mark.parametrize("name,cls", [
    ("mnist_cnn", MnistCNN), ("mnist_cnn_small", MnistCNNSmall), ("cifar_cnn", CifarCNN),
    ("resnet20", ResNet20), ("resnet18", ResNet18), ("mlp", MLP)])
def test_get_model_builds_the_class_with_the_fields(name, cls):
  norm = normzoo.get_norm("group", num_groups=8)
  model = get_model(name, num_classes=7, norm=norm, norm_position="after_activation")
  assert type(model) is cls
  assert (model.num_classes, model.norm, model.norm_position) == (7, norm, "after_activation")


def test_defaults():
  model = get_model("resnet20")
  assert model.num_classes == 10 and model.norm_position == "before_activation"
  assert model.norm is models.DEFAULT_NORM
  assert models.DEFAULT_NORM.keywords == {"momentum": 0.9}
  assert model.kernel_init_scale == 1.0


def test_unknown_model_name_lists_valid_names():
  with pytest.raises(ValueError, match=r"unknown model 'resnet99'.*cifar_cnn.*resnet20"):
    get_model("resnet99")


def test_unknown_argument_is_named():
  with pytest.raises(ValueError, match=r"'mlp' does not accept argument\(s\) \['widht'\].*width"):
    get_model("mlp", widht=3)


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_bad_norm_position_fails_at_construction(name):
  with pytest.raises(ValueError, match=r"norm_position='pre'.*'before_activation', "
                                       r"'after_activation'"):
    get_model(name, norm_position="pre")


def test_bad_norm_position_in_a_standalone_block():
  block = models.BasicBlock(4, norm_position="post")
  with pytest.raises(ValueError, match=r"norm_position='post'"):
    helpers.init(block, (2, 4, 4, 4))


def test_bad_shortcut_is_named():
  model, shape = helpers.small_model("resnet20", shortcut="optionC")
  with pytest.raises(ValueError, match=r"shortcut='optionC'.*'pad', 'projection'"):
    helpers.init(model, shape)


def test_register_model_refuses_to_replace():
  register_model("resnet20", ResNet20)  # same constructor: no-op
  with pytest.raises(ValueError, match="'resnet20' is already registered"):
    register_model("resnet20", ResNet18)
  try:
    register_model("tiny_mlp_for_test", MLP)
    assert type(get_model("tiny_mlp_for_test", width=4)) is MLP
  finally:
    models.MODELS.pop("tiny_mlp_for_test", None)
