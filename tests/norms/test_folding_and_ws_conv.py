"""Weight-standardized conv against an explicitly standardized kernel; BN folding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo

RNG = np.random.default_rng(14)
KEY = jax.random.PRNGKey(0)


def _data(shape, loc=0.0, spread=1.0):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32))


def _np_standardize(kernel, eps):
  k = np.asarray(kernel, np.float64)
  axes = tuple(range(k.ndim - 1))
  return (k - k.mean(axes)) / np.sqrt(k.var(axes) + eps)


@pytest.mark.parametrize("kwargs,in_ch", [
    (dict(features=6, kernel_size=(3, 3), strides=2, feature_group_count=2, use_bias=False), 4),
    (dict(features=3, kernel_size=(2,), padding="VALID", epsilon=1e-3), 2),
])
def test_ws_conv_equals_conv_with_standardized_kernel(kwargs, in_ch):
  x = _data((2,) + (6,) * (len(kwargs["kernel_size"])) + (in_ch,))
  ws = normzoo.WeightStandardizedConv(**kwargs)
  v = ws.init(KEY, x)
  plain = nn.Conv(**{k: a for k, a in kwargs.items() if k != "epsilon"})
  assert jax.tree.structure(plain.init(KEY, x)) == jax.tree.structure(v)
  std = jnp.asarray(_np_standardize(v["params"]["kernel"], kwargs.get("epsilon", 1e-5)),
                    jnp.float32)
  np.testing.assert_allclose(jax.jit(ws.apply)(v, x),
                             jax.jit(plain.apply)({"params": {**v["params"], "kernel": std}}, x),
                             atol=1e-5, rtol=1e-5)


def test_ws_conv_trains_the_raw_kernel_and_ignores_its_scale():
  x = _data((2, 5, 5, 3))
  ws = normzoo.WeightStandardizedConv(4, (3, 3), epsilon=1e-12)
  v = ws.init(KEY, x)
  kernel = v["params"]["kernel"]
  # The stored parameter is the raw kernel; its gradient is orthogonal to the
  # directions the standardization removes (per-channel shift and scale).
  g = jax.jit(jax.grad(lambda p: jnp.sum(ws.apply({"params": p}, x) ** 2)))(v["params"])["kernel"]
  assert np.abs(g).max() > 1e-3
  size = np.abs(g).sum(axis=(0, 1, 2))
  assert np.all(np.abs(np.sum(g, axis=(0, 1, 2))) < 1e-5 * size)
  assert np.all(np.abs(np.sum(g * kernel, axis=(0, 1, 2))) < 1e-5 * size * np.abs(kernel).max())
  v_scaled = {"params": {**v["params"], "kernel": kernel * 3.0 + 0.5}}
  np.testing.assert_allclose(ws.apply(v_scaled, x), ws.apply(v, x), atol=1e-4, rtol=1e-4)


def test_conv_registry():
  assert normzoo.get_conv("standard") is nn.Conv
  assert normzoo.get_conv("ws") is normzoo.WeightStandardizedConv
  with pytest.warns(DeprecationWarning, match="use normzoo.WeightStandardizedConv"):
    assert normzoo.weight_standardized_conv is normzoo.WeightStandardizedConv
  with pytest.warns(DeprecationWarning):
    assert normzoo.norms.weight_standardized_conv is normzoo.WeightStandardizedConv
  assert "weight_standardized_conv" not in normzoo.__all__
  with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
    normzoo.nonexistent  # noqa: B018
  assert normzoo.get_conv("ws", epsilon=1e-3)(4, (3, 3)).epsilon == 1e-3
  assert normzoo.available_convs() == sorted(normzoo.CONVS) == ["standard", "ws"]
  with pytest.raises(ValueError, match="unknown conv 'weight_std'.*standard, ws"):
    normzoo.get_conv("weight_std")


def _bn_variables(c):
  return {"params": {"scale": _data((c,), 1.0, 0.3), "bias": _data((c,), 0.0, 0.3)},
          "batch_stats": {"mean": _data((c,), 0.5, 1.0), "var": jnp.abs(_data((c,), 1.0, 0.5))
                          + 0.1}}


@pytest.mark.parametrize("layer,x_shape,use_bias", [
    (nn.Dense(7), (5, 4), True),
    (nn.Dense(7, use_bias=False), (5, 4), False),
    (nn.Conv(6, (3, 3), feature_group_count=2), (2, 6, 6, 4), True),
])
def test_folded_layer_equals_layer_then_eval_batch_norm(layer, x_shape, use_bias):
  x = _data(x_shape, 0.0, 2.0)
  v = layer.init(KEY, x)
  c = v["params"]["kernel"].shape[-1]
  bn_v = _bn_variables(c)
  want = normzoo.BatchNorm(epsilon=1e-3).apply(bn_v, layer.apply(v, x), use_running_average=True)
  kernel, bias = normzoo.fold_batch_norm(
      v["params"]["kernel"], v["params"].get("bias"), bn_v["params"]["scale"],
      bn_v["params"]["bias"], bn_v["batch_stats"]["mean"], bn_v["batch_stats"]["var"], 1e-3)
  folded = layer.clone(use_bias=True)
  got = folded.apply({"params": {"kernel": kernel, "bias": bias}}, x)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  assert use_bias == ("bias" in v["params"])


def test_fold_without_scale_or_bias_and_shape_errors():
  k, mean, var = _data((3, 4)), _data((4,)), jnp.abs(_data((4,))) + 0.5
  kernel, bias = normzoo.fold_batch_norm(k, None, None, None, mean, var)
  inv = 1 / np.sqrt(np.asarray(var, np.float64) + 1e-5)
  np.testing.assert_allclose(kernel, np.asarray(k) * inv, rtol=1e-6)
  np.testing.assert_allclose(bias, -np.asarray(mean) * inv, rtol=1e-6)
  with pytest.raises(ValueError, match="mean has shape \\(3,\\) but the kernel has 4 output"):
    normzoo.fold_batch_norm(k, None, None, None, mean[:3], var)
