"""Numerical behaviour of the models on tiny inputs: train/eval, norm order, dtype, init."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.models import BasicBlock
from normzoo.models.layers import norm_act
from tests.models import helpers


def apply(model, variables, x, train, **kw):
  return model.apply(variables, x, train=train, **kw)


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_batch_norm_train_updates_stats_and_eval_uses_them(name):
  model, shape = helpers.small_model(name, normzoo.get_norm("batch", momentum=0.9))
  x = helpers.inputs(shape)
  variables = helpers.init(model, shape)
  logits, state = apply(model, variables, x, True, mutable=["batch_stats"])
  assert logits.shape == (shape[0], 10) and logits.dtype == jnp.float32
  assert np.isfinite(logits).all()
  old, new = helpers.flat(variables["batch_stats"]), helpers.flat(state["batch_stats"])
  assert old.keys() == new.keys() and old
  for key in old:  # every running mean/var moved towards the batch statistics
    assert not np.allclose(old[key], new[key]), key

  # Evaluation needs no mutable collection and treats examples independently
  # (same batch size: no recompilation for a new shape).
  trained = {"params": variables["params"], "batch_stats": state["batch_stats"]}
  out = apply(model, trained, x, False)
  others_changed = apply(model, trained, x.at[1:].multiply(-3.0), False)
  np.testing.assert_allclose(others_changed[0], out[0], rtol=1e-5, atol=1e-5)
  # ... whereas in training the batch statistics couple them.
  assert not np.allclose(
      apply(model, variables, x.at[1:].multiply(-3.0), True, mutable=["batch_stats"])[0][0],
      logits[0], rtol=1e-3, atol=1e-3)
  with pytest.raises(ValueError, match="mutable"):
    apply(model, trained, x, True)


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_identity_norm_runs_and_train_equals_eval(name):
  model, shape = helpers.small_model(name, normzoo.get_norm("none"))
  x = helpers.inputs(shape)
  variables = helpers.init(model, shape)
  assert set(variables) == {"params"}
  out = apply(model, variables, x, True)
  assert out.shape == (shape[0], 10) and np.isfinite(out).all()
  np.testing.assert_array_equal(out, apply(model, variables, x, False))


@pytest.mark.parametrize("norm_name", ["layer", "group", "instance"])
def test_per_example_norms_run(norm_name):
  model, shape = helpers.small_model("resnet18", helpers.norms()[norm_name])
  x = helpers.inputs(shape)
  out = apply(model, helpers.init(model, shape), x, True)
  assert out.shape == (shape[0], 10) and np.isfinite(out).all()


class _Unit(nn.Module):
  """Just norm_act, to check the order on known numbers."""
  norm_position: str
  norm: Any = helpers.Probe
  dtype: Any = jnp.float32
  conv: Any = nn.Conv
  kernel_init_scale: float = 1.0

  @nn.compact
  def __call__(self, x):
    return norm_act(self, x, train=False)


def test_norm_act_order():
  assert helpers.Probe.SHIFT == 0.25
  x = jnp.array([-2.0, -0.5, 0.125, 2.0])
  before = _Unit("before_activation").apply({}, x)
  after = _Unit("after_activation").apply({}, x)
  np.testing.assert_array_equal(before, [0.0, 0.0, 0.0, 1.75])        # relu(x - 0.25)
  np.testing.assert_array_equal(after, [-0.25, -0.25, -0.125, 1.75])  # relu(x) - 0.25


# Normalized layers per small model (the probe must be instantiated at each).
NUM_NORMS = {"mnist_cnn": 2, "mnist_cnn_small": 1, "cifar_cnn": 4, "resnet20": 19,
             "resnet18": 17 + 3, "mlp": 2}


@pytest.mark.parametrize("name", sorted(helpers.SMALL))
def test_norm_position_in_every_model(name):
  """Before: each norm reads a conv/dense output (has negatives). After: a ReLU output."""
  for position in ("before_activation", "after_activation"):
    probe = functools.partial(helpers.Probe, standardize=True)
    model, shape = helpers.small_model(name, probe, norm_position=position)
    variables = helpers.init(model, shape)
    seen = helpers.probe_inputs(model, variables, helpers.inputs(shape))
    assert len(seen) == NUM_NORMS[name]
    for path, value in seen.items():
      if position == "before_activation" or "shortcut" in path:
        assert value.min() < 0, path
      else:
        assert value.min() == 0, path


@pytest.mark.parametrize("position", ["before_activation", "after_activation"])
def test_mnist_cnn_small_by_hand(position):
  model, shape = helpers.small_model("mnist_cnn_small", helpers.Probe, norm_position=position)
  x = helpers.inputs(shape)
  params = helpers.init(model, shape)["params"]
  n, s, c = shape[0], shape[1] // 2, model.features[0]
  h = jax.lax.conv_general_dilated(x, params["conv_0"]["kernel"], (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  if position == "before_activation":
    assert "bias" not in params["conv_0"]
    h = jax.nn.relu(h - helpers.Probe.SHIFT)
  else:
    h = jax.nn.relu(h + params["conv_0"]["bias"]) - helpers.Probe.SHIFT
  h = h.reshape(n, s, 2, s, 2, c).max(axis=(2, 4)).reshape(n, -1)  # 2x2 max-pool, flatten
  expected = h @ params["head"]["kernel"] + params["head"]["bias"]
  np.testing.assert_allclose(model.apply({"params": params}, x, train=False), expected,
                             rtol=1e-5, atol=1e-5)


def test_bfloat16_computation():
  # Params/logits dtypes of every model are checked by eval_shape in test_architecture.
  model, shape = helpers.small_model("resnet20", normzoo.get_norm("batch"), dtype=jnp.bfloat16)
  variables = helpers.init(model, shape)
  logits, state = apply(model, variables, helpers.inputs(shape), True,
                        mutable=["batch_stats", "intermediates"], capture_intermediates=True)
  assert logits.dtype == jnp.float32 and np.isfinite(logits).all()
  leaves = jax.tree_util.tree_leaves({"p": variables, "s": state["batch_stats"]})
  assert {leaf.dtype for leaf in leaves} == {jnp.dtype("float32")}
  inter = helpers.flat(state["intermediates"])
  convs = [v[0] for k, v in inter.items() if "conv" in k and k.endswith("__call__")]
  norms = [v[0] for k, v in inter.items() if "norm" in k and k.endswith("__call__")]
  assert convs and norms
  assert {v.dtype for v in convs + norms} == {jnp.dtype("bfloat16")}


def test_kernel_init_scale_scales_every_kernel_only():
  model, shape = helpers.small_model("resnet18", normzoo.get_norm("batch"))
  base = helpers.flat(helpers.init(model, shape)["params"])
  scaled = helpers.flat(helpers.init(model.clone(kernel_init_scale=0.25), shape)["params"])
  assert base.keys() == scaled.keys()
  for key in base:
    if key.endswith("kernel"):
      np.testing.assert_allclose(scaled[key], 0.25 * base[key], rtol=1e-6)
    else:
      np.testing.assert_array_equal(scaled[key], base[key])


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_hidden_kernels_are_he_normal_times_the_scale(scale):
  model, shape = helpers.small_model("resnet18", normzoo.get_norm("batch"),
                                     kernel_init_scale=scale)
  params = helpers.flat(helpers.init(model, shape)["params"])
  # Pool every hidden kernel, each divided by its He std sqrt(2 / fan_in): ~5000 samples.
  pooled = np.concatenate([
      np.ravel(v) / np.sqrt(2 / np.prod(v.shape[:-1])) for k, v in params.items()
      if k.endswith("kernel") and not k.startswith("head")])
  assert pooled.size > 4000
  np.testing.assert_allclose(pooled.std(), scale, rtol=0.05)


@pytest.mark.parametrize("norm", [normzoo.get_norm("instance"), nn.InstanceNorm])
@pytest.mark.parametrize("name,where", [("cifar_cnn", "dense_norm"), ("mlp", "MLP hidden")])
def test_instance_norm_on_feature_vectors_is_refused(name, where, norm):
  model, shape = helpers.small_model(name, norm)
  with pytest.raises(ValueError, match=f"{where}.*instance norm needs spatial axes"):
    helpers.init(model, shape)


def test_cifar_cnn_dense_norm_is_separate():
  model, shape = helpers.small_model("cifar_cnn", normzoo.get_norm("instance"),
                                     dense_norm=normzoo.get_norm("batch"))
  variables = helpers.init(model, shape)
  assert set(variables["batch_stats"]) == {"dense_norm_0"}
  out, _ = apply(model, variables, helpers.inputs(shape), True, mutable=["batch_stats"])
  assert np.isfinite(out).all()


def test_keywords_bound_in_the_norm_partial_win():
  # A frozen batch norm: training mode uses the running statistics, no mutable needed.
  frozen = normzoo.get_norm("batch", use_running_average=True)
  model, shape = helpers.small_model("resnet20", frozen)
  variables, x = helpers.init(model, shape), helpers.inputs(shape)
  np.testing.assert_array_equal(apply(model, variables, x, True), apply(model, variables, x, False))


def test_flax_linen_batch_norm_trains():
  model, shape = helpers.small_model("mnist_cnn", functools.partial(nn.BatchNorm, momentum=0.9))
  variables = helpers.init(model, shape)
  _, state = apply(model, variables, helpers.inputs(shape), True, mutable=["batch_stats"])
  assert not np.allclose(state["batch_stats"]["norm_0"]["mean"],
                         variables["batch_stats"]["norm_0"]["mean"])


class _CountingConv(nn.Conv):
  def __call__(self, x):
    self.sow("intermediates", "custom_conv", 1)
    return super().__call__(x)


def test_custom_conv_is_used_for_every_conv():
  model, shape = helpers.small_model("resnet18", normzoo.get_norm("none"), conv=_CountingConv)
  variables = helpers.init(model, shape)
  _, state = apply(model, variables, helpers.inputs(shape), False, mutable=["intermediates"])
  calls = [k for k in helpers.flat(state["intermediates"]) if k.endswith("custom_conv")]
  kernels = [k for k in helpers.flat(variables["params"]) if k.endswith("kernel")]
  assert len(calls) == len(kernels) - 1 == 1 + 16 + 3   # all but the dense head


def test_option_a_shortcut_subsamples_and_zero_fills():
  # Zero kernels (kernel_init_scale=0) and no norm: the block is relu(shortcut(x)).
  block = BasicBlock(16, strides=2, shortcut="pad",
                     norm=normzoo.get_norm("none"), kernel_init_scale=0.0)
  x = helpers.inputs((2, 4, 4, 8))
  out = block.apply(helpers.init(block, x.shape), x, train=False)
  expected = np.concatenate([np.maximum(x[:, ::2, ::2, :], 0), np.zeros((2, 2, 2, 8))], -1)
  np.testing.assert_array_equal(out, expected)


def test_max_pool_2x2_matches_flax_and_has_a_mask_gradient():
  import numpy as np
  from normzoo.models.layers import max_pool_2x2
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 6, 4, 3))
  np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
  g = jax.grad(lambda x: jnp.sum(max_pool_2x2(x) * jnp.arange(3.0)))(x)
  want = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), strides=(2, 2)) * jnp.arange(3.0)))(x)
  np.testing.assert_allclose(g, want)  # random floats: no ties, so the same single location
  odd = jax.random.normal(jax.random.PRNGKey(4), (1, 5, 5, 2))
  np.testing.assert_array_equal(max_pool_2x2(odd), nn.max_pool(odd, (2, 2), strides=(2, 2)))
