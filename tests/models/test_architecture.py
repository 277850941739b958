"""Structure checks on the real-size models, via jax.eval_shape (no compute)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import normzoo
from normzoo.models import get_model
from tests.models import helpers

# Exact parameter counts (batch_stats excluded) with batch norm, 10 classes.
PARAM_COUNTS = {
    "mnist_cnn": 421_738,
    "mnist_cnn_small": 63_082,
    "cifar_cnn": 4_577_866,
    "resnet20": 269_722,     # He et al. (2016), Table 6: 0.27M
    "resnet18": 11_173_962,  # the usual CIFAR ResNet-18: 11.2M
    "mlp": 933_898,
}


def abstract_init(model, shape):
  return jax.eval_shape(lambda: helpers.init(model, shape))


def count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_output_shape_and_param_count(name):
  model = get_model(name, num_classes=10)
  shape = helpers.FULL_INPUT[name]
  variables = abstract_init(model, shape)
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros(shape), train=False), variables)
  assert out.shape == (shape[0], 10) and out.dtype == jnp.float32
  assert count(variables["params"]) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name,target", [("resnet20", 0.27e6), ("resnet18", 11.2e6)])
def test_resnet_sizes_match_the_literature(name, target):
  variables = abstract_init(get_model(name), helpers.FULL_INPUT[name])
  assert abs(count(variables["params"]) / target - 1) < 0.03


def test_num_classes_sets_the_logits_width():
  model = get_model("resnet20", num_classes=100)
  out = jax.eval_shape(lambda: model.init_with_output(
      jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)), train=False)[0])
  assert out.shape == (2, 100)


@pytest.mark.parametrize("norm_name", ["batch", "layer", "group", "instance", "none"])
@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_batch_stats_present_iff_the_norm_uses_batch_statistics(name, norm_name):
  norm = helpers.norms()[norm_name]
  extra = {}
  if norm_name == "instance" and name not in helpers.SPATIAL_ONLY:
    if name == "mlp":
      pytest.skip("instance norm is undefined on the MLP's (N, C) inputs (tested elsewhere)")
    extra = {"dense_norm": normzoo.get_norm("layer")}
  model, shape = helpers.small_model(name, norm, **extra)
  variables = abstract_init(model, shape)
  assert ("batch_stats" in variables) == normzoo.uses_batch_statistics(norm)
  has_norm_params = any("norm" in k for k in helpers.flat(variables["params"]))
  assert has_norm_params == (norm_name != "none")


def biases(name, norm, position) -> dict[str, bool]:
  """{'path/to/layer': has a bias} for every conv/dense kernel except the logits layer."""
  variables = abstract_init(get_model(name, norm=norm, norm_position=position),
                            helpers.FULL_INPUT[name])
  params = helpers.flat(variables["params"])
  layers = {k[:-len("/kernel")] for k in params if k.endswith("/kernel")} - {"head"}
  assert layers
  return {layer: f"{layer}/bias" in params for layer in layers}


# Layers not followed by a norm at all (mnist_cnn's hidden dense is dense -> ReLU).
UNNORMALIZED = {"mnist_cnn": {"dense_0"}}


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_layer_feeding_a_norm_has_no_bias(name):
  has_bias = biases(name, normzoo.get_norm("batch"), "before_activation")
  assert {k for k, v in has_bias.items() if v} == UNNORMALIZED.get(name, set())


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_layers_keep_their_bias_without_a_norm(name):
  assert all(biases(name, normzoo.get_norm("none"), "before_activation").values())
  assert all(biases(name, normzoo.get_norm("none"), "after_activation").values())


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_layers_keep_their_bias_when_the_norm_follows_the_activation(name):
  has_bias = biases(name, normzoo.get_norm("batch"), "after_activation")
  assert len(has_bias) > len(UNNORMALIZED.get(name, ()))
  # A projection shortcut has no activation: conv -> norm in both positions.
  assert all(v for k, v in has_bias.items() if "shortcut" not in k)
  assert not any(v for k, v in has_bias.items() if "shortcut" in k)


def test_head_always_has_a_bias():
  variables = abstract_init(get_model("mnist_cnn_small"), helpers.FULL_INPUT["mnist_cnn"])
  assert set(variables["params"]["head"]) == {"kernel", "bias"}


def test_shortcuts():
  r20 = helpers.flat(abstract_init(get_model("resnet20"), (2, 32, 32, 3))["params"])
  assert not any("shortcut" in k for k in r20)  # option A: parameter-free
  r18 = helpers.flat(abstract_init(get_model("resnet18"), (2, 32, 32, 3))["params"])
  blocks = {k.split("/")[0] for k in r18 if "shortcut_conv" in k}
  assert blocks == {"stage2_block0", "stage3_block0", "stage4_block0"}
  assert r18["stage2_block0/shortcut_conv/kernel"].shape == (1, 1, 64, 128)
  assert "stage2_block0/shortcut_norm/scale" in r18


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_bfloat16_computation_keeps_float32_params(name):
  model = get_model(name, dtype=jnp.bfloat16)
  shape = helpers.FULL_INPUT[name]
  variables = abstract_init(model, shape)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype("float32")}
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros(shape), train=False), variables)
  assert out.dtype == jnp.float32


@pytest.mark.parametrize("norm", [
    functools.partial(nn.BatchNorm, momentum=0.9), functools.partial(nn.GroupNorm, num_groups=8),
    nn.LayerNorm])
def test_flax_linen_norms_are_accepted(norm):
  variables = abstract_init(get_model("resnet20", norm=norm), (2, 32, 32, 3))
  is_batch_norm = getattr(norm, "func", None) is nn.BatchNorm
  assert ("batch_stats" in variables) == is_batch_norm
  assert "stem_conv/bias" not in helpers.flat(variables["params"])
