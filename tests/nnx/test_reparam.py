"""normzoo.nnx SpectralNorm / WeightNorm against flax.nnx's, flax.linen's and float64 NumPy.

flax.nnx writes the normalized weights back into the wrapped layer on every
call (google/flax#5576), so it agrees with linen and the papers on the first
call only; over several calls ours is checked against flax.linen instead.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import normzoo.nnx as nz

RNG = np.random.default_rng(2027)


def _data(shape, dtype=np.float32):
  return jnp.asarray(RNG.standard_normal(shape).astype(np.float32)).astype(dtype)


def _np_sigma(kernel):
  w = np.asarray(kernel, np.float64)
  return np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]


def _close(a, b, tol=1e-5):
  diffs = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(jnp.asarray(x, jnp.float32)
                                                          - jnp.asarray(y, jnp.float32)))), a, b)
  return max(jax.tree.leaves(diffs)) <= tol


LAYERS = {
    "linear": (lambda rngs: nnx.Linear(6, 4, rngs=rngs), (3, 6)),
    "conv": (lambda rngs: nnx.Conv(3, 5, (3, 3), rngs=rngs), (2, 6, 6, 3)),
}


def _pair(cls_ours, cls_ref, layer, **kw):
  make, shape = LAYERS[layer]
  ours = cls_ours(make(nnx.Rngs(0)), rngs=nnx.Rngs(1), **kw)
  ref = cls_ref(make(nnx.Rngs(0)), rngs=nnx.Rngs(1), **kw)
  return ours, ref, _data(shape)


def _loss(model, x):
  return jnp.sum(jnp.sin(model(x)))


# ---------------------------------------------------------------- SpectralNorm

@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_spectral_state_and_first_call_match_flax_nnx(layer):
  ours, ref, x = _pair(nz.SpectralNorm, nnx.SpectralNorm, layer, n_steps=2)
  assert jax.tree.structure(nnx.state(ours)) == jax.tree.structure(nnx.state(ref))
  assert _close(nnx.state(ours), nnx.state(ref), 0.0)
  assert set(nnx.state(ours, nnx.BatchStat)["batch_stats"]) == {("kernel", "u"), ("kernel", "sigma")}
  grads = nnx.grad(_loss)(ours, x)
  grads_ref = nnx.grad(_loss)(ref, x)
  assert _close(grads, grads_ref)
  ours, ref, x = _pair(nz.SpectralNorm, nnx.SpectralNorm, layer, n_steps=2)
  np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-6)
  assert _close(nnx.state(ours, nnx.BatchStat), nnx.state(ref, nnx.BatchStat))


def _linen_variables(model):
  """The nnx SpectralNorm's state as flax.linen.SpectralNorm's variables."""
  params = {k: v.get_value() for k, v in vars(model.layer_instance).items()
            if isinstance(v, nnx.Param)}
  stats = {"layer_instance/" + "/".join(k): v.get_value() for k, v in model.batch_stats.items()}
  return {"params": {"layer_instance": params}, "batch_stats": stats}


@pytest.mark.parametrize("layer,linen_layer", [("linear", lambda: nn.Dense(4)),
                                               ("conv", lambda: nn.Conv(5, (3, 3)))])
def test_spectral_several_updates_and_gradients_match_flax_linen(layer, linen_layer):
  make, shape = LAYERS[layer]
  x = _data(shape)
  model = nz.SpectralNorm(make(nnx.Rngs(0)), n_steps=3, rngs=nnx.Rngs(1))
  ref = nn.SpectralNorm(linen_layer(), n_steps=3)
  variables = _linen_variables(model)
  kernel = model.layer_instance.kernel.get_value()
  for _ in range(4):
    y_ref, upd = ref.apply(variables, x, update_stats=True, mutable=["batch_stats"])
    variables = {**variables, **upd}
    y = model(x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=1e-6)
    assert _close(_linen_variables(model), variables)
  # The layer keeps its raw kernel (flax.nnx would hold kernel / sigma now).
  np.testing.assert_array_equal(np.asarray(model.layer_instance.kernel.get_value()),
                                np.asarray(kernel))

  def linen_loss(params):
    y, _ = ref.apply({**variables, "params": params}, x, update_stats=True, mutable=["batch_stats"])
    return jnp.sum(jnp.sin(y))

  grads = nnx.grad(_loss)(model, x)
  grads_ref = jax.grad(linen_loss)(variables["params"])["layer_instance"]
  assert _close({"kernel": grads.layer_instance.kernel.get_value(),
                 "bias": grads.layer_instance.bias.get_value()}, grads_ref)


def test_spectral_update_stats_flag_train_and_eval():
  model = nz.SpectralNorm(nnx.Linear(6, 4, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
  x = _data((3, 6))
  before = jax.tree.map(jnp.array, nnx.state(model, nnx.BatchStat))
  model(x, update_stats=False)
  assert _close(nnx.state(model, nnx.BatchStat), before, 0.0)
  model.eval()
  model(x)
  assert _close(nnx.state(model, nnx.BatchStat), before, 0.0)
  model.train()
  model(x)
  assert not _close(nnx.state(model, nnx.BatchStat), before, 1e-3)
  off = nz.SpectralNorm(nnx.Linear(6, 4, rngs=nnx.Rngs(0)), update_stats=False, rngs=nnx.Rngs(1))
  off(x)
  assert _close(nnx.state(off, nnx.BatchStat), before, 0.0)
  off(x, update_stats=True)
  assert not _close(nnx.state(off, nnx.BatchStat), before, 1e-3)


def test_spectral_training_keeps_sigma_the_spectral_norm_of_the_raw_kernel():
  # Under nnx.jit + nnx.Optimizer the stored sigma tracks the SVD of the raw
  # kernel; flax.nnx's write-back makes it ~1 after the first call instead.
  model = nz.SpectralNorm(nnx.Linear(6, 4, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
  optimizer = nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)
  x, target = _data((8, 6)), _data((8, 4))

  @nnx.jit
  def step(model, optimizer, x):
    loss_fn = lambda m: jnp.mean((m(x) - target) ** 2)
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  kernel0 = np.asarray(model.layer_instance.kernel.get_value())
  for _ in range(60):
    step(model, optimizer, x)
  kernel = np.asarray(model.layer_instance.kernel.get_value())
  assert not np.allclose(kernel, kernel0)  # the optimizer moved the raw kernel
  np.testing.assert_allclose(float(model.batch_stats[("kernel", "sigma")].get_value()),
                             _np_sigma(kernel), rtol=1e-3)
  assert abs(_np_sigma(kernel) - 1.0) > 0.1  # so sigma ~ 1 would fail


def test_spectral_state_from_flax_nnx_loads():
  ours, ref, x = _pair(nz.SpectralNorm, nnx.SpectralNorm, "linear")
  ref.batch_stats[("kernel", "u")].set_value(_data((1, 4)))
  ref.layer_instance.kernel.set_value(_data((6, 4)))
  nnx.update(ours, nnx.state(ref))
  np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-6)


def test_spectral_bf16_kernel_against_float64():
  layer = nnx.Linear(16, 4, param_dtype=jnp.bfloat16, dtype=jnp.float32, rngs=nnx.Rngs(0))
  model = nz.SpectralNorm(layer, n_steps=300, param_dtype=jnp.bfloat16, dtype=jnp.float32,
                          rngs=nnx.Rngs(1))
  x = _data((3, 16))
  y = model(x)
  kernel = np.asarray(layer.kernel.get_value(), np.float64)
  assert layer.kernel.get_value().dtype == jnp.bfloat16  # raw kernel kept, dtype included
  expected = np.asarray(x, np.float64) @ (kernel / _np_sigma(kernel))
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-3, atol=1e-4)


def test_spectral_errors():
  with pytest.raises(ValueError, match="error_on_non_matrix"):
    nz.SpectralNorm(nnx.Conv(3, 5, (3, 3), rngs=nnx.Rngs(0)), error_on_non_matrix=True,
                    rngs=nnx.Rngs(1))
  with pytest.raises(ValueError, match="n_steps=0"):
    nz.SpectralNorm(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), n_steps=0, rngs=nnx.Rngs(1))
  with pytest.raises(ValueError, match="epsilon=-1"):
    nz.SpectralNorm(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), epsilon=-1, rngs=nnx.Rngs(1))


# ---------------------------------------------------------------- WeightNorm

WEIGHT_CASES = [("linear", {}), ("linear", dict(feature_axes=None)),
                ("linear", dict(variable_filter=nnx.PathContains("bias"))),
                ("linear", dict(use_scale=False)), ("conv", {}), ("conv", dict(feature_axes=(2, 3)))]


@pytest.mark.parametrize("layer,kwargs", WEIGHT_CASES)
def test_weight_norm_first_call_matches_flax_nnx(layer, kwargs):
  ours, ref, x = _pair(nz.WeightNorm, nnx.WeightNorm, layer, **kwargs)
  np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-6)
  if kwargs.get("use_scale", True):
    assert set(ours.scales) == set(ref.scales)
    assert all(isinstance(g, nnx.Param) for g in ours.scales.values())


@pytest.mark.parametrize("layer,linen_layer,kwargs", [
    ("linear", lambda: nn.Dense(4), {}), ("conv", lambda: nn.Conv(5, (3, 3)), {}),
    ("conv", lambda: nn.Conv(5, (3, 3)), dict(feature_axes=(2, 3)))])
def test_weight_norm_outputs_and_gradients_match_flax_linen(layer, linen_layer, kwargs):
  make, shape = LAYERS[layer]
  x = _data(shape)
  model = nz.WeightNorm(make(nnx.Rngs(0)), rngs=nnx.Rngs(1), **kwargs)
  model.scales[("kernel",)].set_value(_data(model.scales[("kernel",)].shape) + 2.0)
  ref = nn.WeightNorm(linen_layer(), **kwargs)
  layer_params = {"kernel": model.layer_instance.kernel.get_value(),
                  "bias": model.layer_instance.bias.get_value()}
  params = {"layer_instance": layer_params,
            "layer_instance/kernel/scale": model.scales[("kernel",)].get_value()}
  for _ in range(2):  # twice: a write-back would change the second output
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(ref.apply({"params": params}, x)),
                               rtol=1e-5, atol=1e-6)
  grads = nnx.grad(_loss)(model, x)
  grads_ref = jax.grad(lambda p: jnp.sum(jnp.sin(ref.apply({"params": p}, x))))(params)
  assert _close(grads.layer_instance.kernel.get_value(), grads_ref["layer_instance"]["kernel"])
  assert _close(grads.scales[("kernel",)].get_value(), grads_ref["layer_instance/kernel/scale"])
  assert float(jnp.max(jnp.abs(grads.scales[("kernel",)].get_value()))) > 0.0


def test_weight_norm_scales_train_and_raw_weights_stay_v():
  model = nz.WeightNorm(nnx.Linear(6, 4, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
  x = _data((3, 6))
  kernel = np.asarray(model.layer_instance.kernel.get_value())
  model(x)
  np.testing.assert_array_equal(np.asarray(model.layer_instance.kernel.get_value()), kernel)
  assert ("scales", ("kernel",)) in nnx.to_flat_state(nnx.state(model, nnx.Param)).paths
  optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
  grads = nnx.grad(_loss)(model, x)
  optimizer.update(model, grads)
  assert not np.allclose(np.asarray(model.scales[("kernel",)].get_value()), 1.0)


def test_weight_norm_bf16_params_against_float64():
  layer = nnx.Linear(16, 4, param_dtype=jnp.bfloat16, dtype=jnp.float32, rngs=nnx.Rngs(0))
  model = nz.WeightNorm(layer, param_dtype=jnp.bfloat16, dtype=jnp.float32, rngs=nnx.Rngs(1))
  assert model.scales[("kernel",)].get_value().dtype == jnp.bfloat16
  x = _data((3, 16))
  v = np.asarray(layer.kernel.get_value(), np.float64)
  expected = np.asarray(x, np.float64) @ (v / np.linalg.norm(v, axis=0))
  np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-4, atol=1e-4)


def test_weight_norm_errors_and_registry():
  with pytest.raises(ValueError, match="feature_axes=2"):
    nz.WeightNorm(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), feature_axes=2, rngs=nnx.Rngs(1))
  with pytest.raises(ValueError, match="epsilon=0"):
    nz.WeightNorm(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), epsilon=0, rngs=nnx.Rngs(1))
  module = nz.get_reparam("spectral", n_steps=2)(nnx.Linear(3, 2, rngs=nnx.Rngs(0)),
                                                 rngs=nnx.Rngs(1))
  assert isinstance(module, nz.SpectralNorm) and module.n_steps == 2
  with pytest.raises(ValueError, match="valid names are: spectral, weight"):
    nz.get_reparam("spectrum")
  with pytest.raises(ValueError, match=r"does not accept argument\(s\) \['momentum'\]"):
    nz.get_reparam("weight", momentum=0.9)


def test_weight_norm_state_from_flax_nnx_loads():
  ours, ref, x = _pair(nz.WeightNorm, nnx.WeightNorm, "conv")
  ref.scales[("kernel",)] = _data((5,)) + 2.0  # flax.nnx keeps plain arrays here
  ref.layer_instance.kernel.set_value(_data((3, 3, 3, 5)))
  nnx.update(ours, nnx.state(ref))
  assert isinstance(ours.scales[("kernel",)], nnx.Param)
  np.testing.assert_allclose(np.asarray(ours.scales[("kernel",)].get_value()),
                             np.asarray(ref.scales[("kernel",)]))
  np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-6)
