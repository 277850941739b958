"""Spectral and weight normalization: the functions against float64 NumPy, the
linen wrappers against flax.linen.SpectralNorm / WeightNorm."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.norms import reparam

RNG = np.random.default_rng(27)
KEY = jax.random.PRNGKey(0)


def _data(shape, dtype=np.float32):
  return jnp.asarray(RNG.standard_normal(shape).astype(np.float32)).astype(dtype)


def _np_sigma(kernel):
  """Largest singular value of the kernel viewed as (-1, C_out), in float64."""
  w = np.asarray(kernel, np.float64)
  return np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]


def _np_weight_norm(v, g, feature_axes):
  v = np.asarray(v, np.float64)
  red = tuple(a for a in range(v.ndim) if a not in feature_axes)
  shape = [v.shape[a] if a in feature_axes else 1 for a in range(v.ndim)]
  w = v / np.sqrt((v ** 2).sum(axis=red, keepdims=True))
  return w if g is None else w * np.asarray(g, np.float64).reshape(shape)


def _max_diff(a, b):
  return jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(jnp.asarray(x, jnp.float32)
                                                         - jnp.asarray(y, jnp.float32)))), a, b)


# ---------------------------------------------------------------- functions vs float64 oracle

@pytest.mark.parametrize("shape", [(6, 4), (3, 3, 2, 5), (7, 7)])
def test_power_iteration_converges_to_the_largest_singular_value(shape):
  kernel = _data(shape)
  u = _data((1, shape[-1]))
  w_bar, u, sigma = reparam.spectral_normalize(kernel, u, n_steps=200)
  expected = _np_sigma(kernel)
  np.testing.assert_allclose(float(sigma), expected, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(w_bar), np.asarray(kernel, np.float64) / expected,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_np_sigma(w_bar), 1.0, rtol=1e-5)
  assert w_bar.shape == shape and u.shape == (1, shape[-1])


def test_power_iteration_state_carries_over_calls():
  # n steps at once == n calls of one step each, threading u through.
  kernel, u0 = _data((5, 4)), _data((1, 4))
  _, u_once, s_once = reparam.spectral_normalize(kernel, u0, n_steps=4)
  u = u0
  for _ in range(4):
    _, u, s = reparam.spectral_normalize(kernel, u, n_steps=1)
  np.testing.assert_allclose(np.asarray(u), np.asarray(u_once), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(float(s), float(s_once), rtol=1e-6)


@pytest.mark.parametrize("shape,feature_axes,expect_axes", [
    ((5, 4), -1, (1,)), ((3, 3, 2, 6), -1, (3,)), ((3, 3, 2, 6), (0, 3), (0, 3)),
    ((4, 3), None, ()), ((4, 3), (), ()), ((6,), -1, (0,))])
def test_weight_normalize_matches_numpy(shape, feature_axes, expect_axes):
  v = _data(shape)
  g = _data(tuple(shape[a] for a in expect_axes))
  out = reparam.weight_normalize(v, g, feature_axes=feature_axes, epsilon=1e-30)
  np.testing.assert_allclose(np.asarray(out), _np_weight_norm(v, g, expect_axes),
                             rtol=2e-6, atol=1e-6)
  unscaled = reparam.weight_normalize(v, None, feature_axes=feature_axes, epsilon=1e-30)
  np.testing.assert_allclose(np.asarray(unscaled), _np_weight_norm(v, None, expect_axes),
                             rtol=2e-6, atol=1e-6)


def test_half_precision_weights_use_float32_math():
  # The bf16 inputs are exact in float64; bf16 arithmetic would be off by ~1e-2.
  v = _data((64, 8), jnp.bfloat16)
  g = _data((8,), jnp.bfloat16)
  out = reparam.weight_normalize(v, g, dtype=jnp.float32, epsilon=1e-30)
  np.testing.assert_allclose(np.asarray(out), _np_weight_norm(v, g, (1,)), rtol=1e-5, atol=1e-6)
  assert reparam.weight_normalize(v, g).dtype == jnp.bfloat16
  kernel = _data((64, 8), jnp.bfloat16)
  w_bar, u, sigma = reparam.spectral_normalize(kernel, _data((1, 8), jnp.bfloat16), n_steps=300,
                                               dtype=jnp.float32)
  assert u.dtype == sigma.dtype == jnp.bfloat16  # state keeps its own dtype
  np.testing.assert_allclose(np.asarray(w_bar), np.asarray(kernel, np.float64) / _np_sigma(kernel),
                             rtol=1e-4, atol=1e-5)


def test_numpy_scalars_are_accepted():
  kernel, u = _data((5, 4)), _data((1, 4))
  expected = reparam.spectral_normalize(kernel, u, n_steps=2, epsilon=1e-6)
  got = reparam.spectral_normalize(kernel, u, n_steps=np.int64(2), epsilon=np.float32(1e-6))
  assert _max_diff(got, expected) == (0.0, 0.0, 0.0)


def test_zero_kernel_is_left_unchanged():
  w_bar, _, sigma = reparam.spectral_normalize(jnp.zeros((3, 2)), _data((1, 2)))
  assert float(sigma) == 0.0 and not np.any(np.asarray(w_bar))
  assert np.all(np.isfinite(np.asarray(reparam.weight_normalize(jnp.zeros((3, 2)), None))))


@pytest.mark.parametrize("call,match", [
    (lambda: reparam.spectral_normalize(_data((3, 2)), _data((1, 2)), n_steps=0), "n_steps=0"),
    (lambda: reparam.spectral_normalize(_data((3, 2)), _data((1, 2)), n_steps=1.5),
     "n_steps=1.5"),
    (lambda: reparam.spectral_normalize(_data((3, 2)), _data((1, 2)), n_steps=True),
     "n_steps=True"),
    (lambda: reparam.spectral_normalize(_data((3, 2)), _data((1, 2)), epsilon=0.0),
     "epsilon=0.0"),
    (lambda: reparam.spectral_normalize(_data((3,)), _data((1, 3))), r"ndim >= 2.*\(3,\)"),
    (lambda: reparam.spectral_normalize(_data((2, 3, 4)), _data((1, 4)),
                                        error_on_non_matrix=True), "error_on_non_matrix"),
    (lambda: reparam.spectral_normalize(_data((3, 2)), _data((1, 3))), r"u must have shape \(1, 2\)"),
    (lambda: reparam.weight_normalize(_data((3, 2)), None, epsilon=-1.0), "epsilon=-1.0"),
    (lambda: reparam.weight_normalize(_data((3, 2)), None, feature_axes=2), "feature_axes=2"),
    (lambda: reparam.weight_normalize(_data((3, 2)), None, feature_axes="a"), "feature_axes='a'"),
    (lambda: reparam.weight_normalize(_data((3, 2)), _data((3,))), r"needs shape \(2,\)"),
])
def test_bad_arguments_raise_value_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# ---------------------------------------------------------------- linen wrappers vs flax.linen

LAYERS = {
    "dense": (lambda: nn.Dense(4), (3, 6)),
    "conv": (lambda: nn.Conv(5, (3, 3)), (2, 6, 6, 3)),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("n_steps", [1, 3])
def test_spectral_norm_matches_flax_over_several_updates(layer, n_steps):
  make, shape = LAYERS[layer]
  x = _data(shape)
  ref, ours = nn.SpectralNorm(make(), n_steps=n_steps), normzoo.SpectralNorm(make(), n_steps=n_steps)
  variables = ref.init(KEY, x, update_stats=False)
  ours_init = ours.init(KEY, x, update_stats=False)
  assert jax.tree.structure(ours_init) == jax.tree.structure(variables)
  assert max(jax.tree.leaves(_max_diff(ours_init, variables))) == 0.0
  theirs = variables
  for _ in range(4):  # ours is fed flax's variables only once, then its own
    y_ref, upd_ref = ref.apply(theirs, x, update_stats=True, mutable=["batch_stats"])
    y, upd = ours.apply(variables, x, update_stats=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=1e-6)
    assert max(jax.tree.leaves(_max_diff(upd, upd_ref))) < 1e-5
    theirs, variables = {**theirs, **upd_ref}, {**variables, **upd}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_spectral_norm_gradients_match_flax(layer):
  make, shape = LAYERS[layer]
  x = _data(shape)
  ref, ours = nn.SpectralNorm(make(), n_steps=2), normzoo.SpectralNorm(make(), n_steps=2)
  variables = ref.init(KEY, x, update_stats=False)

  def grads(module):
    def loss(params, x):
      y, _ = module.apply({**variables, "params": params}, x, update_stats=True,
                          mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y))
    return jax.grad(loss, argnums=(0, 1))(variables["params"], x)

  assert max(jax.tree.leaves(_max_diff(grads(ours), grads(ref)))) < 1e-5


def test_spectral_norm_update_stats_false_leaves_state_unchanged():
  x = _data((3, 6))
  module = normzoo.SpectralNorm(nn.Dense(4))
  variables = module.init(KEY, x, update_stats=False)
  _, updates = module.apply(variables, x, update_stats=False, mutable=["batch_stats"])
  assert max(jax.tree.leaves(_max_diff(updates["batch_stats"], variables["batch_stats"]))) == 0.0
  _, updates = module.apply(variables, x, update_stats=True, mutable=["batch_stats"])
  assert max(jax.tree.leaves(_max_diff(updates["batch_stats"], variables["batch_stats"]))) > 0.0


def test_stored_sigma_converges_to_the_spectral_norm_of_the_raw_kernel():
  x = _data((3, 6))
  module = normzoo.SpectralNorm(nn.Dense(4), collection_name="spectral")
  variables = module.init(KEY, x, update_stats=False)
  assert set(variables) == {"params", "spectral"}
  step = jax.jit(lambda v: module.apply(v, x, update_stats=True, mutable=["spectral"])[1])
  for _ in range(100):
    variables = {**variables, **step(variables)}
  sigma = variables["spectral"]["layer_instance/kernel/sigma"]
  np.testing.assert_allclose(float(sigma), _np_sigma(variables["params"]["layer_instance"]["kernel"]),
                             rtol=1e-5)


def test_tree_paths_match_flax_inside_a_parent_module():
  class Model(nn.Module):
    wrapper: type

    @nn.compact
    def __call__(self, x):
      x = nn.Dense(3)(x)
      x = self.wrapper(nn.Dense(4))(x, update_stats=True)
      return nn.Dense(2)(x)

  x = _data((2, 5))
  ref = Model(nn.SpectralNorm).init(KEY, x)
  ours = Model(normzoo.SpectralNorm).init(KEY, x)
  assert jax.tree.structure(ours) == jax.tree.structure(ref)
  assert "Dense_1/kernel/u" in ours["batch_stats"]["SpectralNorm_0"]
  assert max(jax.tree.leaves(_max_diff(ours, ref))) == 0.0


def test_spectral_norm_errors():
  x = _data((2, 6, 6, 3))
  with pytest.raises(ValueError, match="error_on_non_matrix"):
    normzoo.SpectralNorm(nn.Conv(5, (3, 3)), error_on_non_matrix=True).init(
        KEY, x, update_stats=False)
  with pytest.raises(ValueError, match="n_steps=0"):
    normzoo.SpectralNorm(nn.Dense(4), n_steps=0).init(KEY, x, update_stats=False)


WEIGHT_CASES = [
    ("dense", {}), ("dense", dict(variable_filter=None)), ("dense", dict(feature_axes=None)),
    ("dense", dict(use_scale=False)), ("conv", {}), ("conv", dict(feature_axes=(2, 3))),
    ("conv", dict(variable_filter={"bias", "kernel"}, epsilon=1e-6)),
]


@pytest.mark.parametrize("layer,kwargs", WEIGHT_CASES)
def test_weight_norm_matches_flax(layer, kwargs):
  make, shape = LAYERS[layer]
  x = _data(shape)
  ref, ours = nn.WeightNorm(make(), **kwargs), normzoo.WeightNorm(make(), **kwargs)
  variables = ref.init(KEY, x)
  ours_init = ours.init(KEY, x)
  assert jax.tree.structure(ours_init) == jax.tree.structure(variables)
  # Non-trivial g, so that a wrongly broadcast scale shows.
  variables = jax.tree.map(lambda p: p + 0.3 * _data(p.shape), variables)
  np.testing.assert_allclose(np.asarray(ours.apply(variables, x)),
                             np.asarray(ref.apply(variables, x)), rtol=1e-5, atol=1e-6)
  loss = lambda m: jax.grad(lambda v, x: jnp.sum(jnp.sin(m.apply(v, x))), argnums=(0, 1))(
      variables, x)
  assert max(jax.tree.leaves(_max_diff(loss(ours), loss(ref)))) < 2e-5


def test_weight_norm_matches_the_float64_formula_with_bf16_params():
  x = _data((3, 6))
  module = normzoo.WeightNorm(nn.Dense(4, param_dtype=jnp.bfloat16, dtype=jnp.float32),
                              param_dtype=jnp.bfloat16, dtype=jnp.float32)
  variables = module.init(KEY, x)
  variables = jax.tree.map(lambda p: (p + 0.3 * _data(p.shape)).astype(jnp.bfloat16), variables)
  params = variables["params"]
  kernel = _np_weight_norm(params["layer_instance"]["kernel"],
                           params["layer_instance/kernel/scale"], (1,))
  expected = np.asarray(x, np.float64) @ kernel + np.asarray(params["layer_instance"]["bias"],
                                                             np.float64)
  np.testing.assert_allclose(np.asarray(module.apply(variables, x)), expected, rtol=1e-4, atol=1e-4)


def test_weight_norm_errors():
  x = _data((3, 6))
  with pytest.raises(ValueError, match="feature_axes=3"):
    normzoo.WeightNorm(nn.Dense(4), feature_axes=3).init(KEY, x)
  with pytest.raises(ValueError, match="epsilon=0"):
    normzoo.WeightNorm(nn.Dense(4), epsilon=0).init(KEY, x)


def test_registry():
  assert normzoo.available_reparams() == ["spectral", "weight"]
  x = _data((3, 6))
  module = normzoo.get_reparam("spectral", n_steps=2)(nn.Dense(4))
  assert isinstance(module, normzoo.SpectralNorm) and module.n_steps == 2
  assert module.init(KEY, x, update_stats=False)["batch_stats"]
  with pytest.raises(ValueError, match="valid names are: spectral, weight"):
    normzoo.get_reparam("spectrum")
  with pytest.raises(ValueError, match=r"does not accept argument\(s\) \['n_steps'\]"):
    normzoo.get_reparam("weight", n_steps=2)


class _Mixer(nn.Module):
  """A layer with a 2D non-parameter variable: a statistic, not a weight."""

  @nn.compact
  def __call__(self, x):
    mix = self.variable("batch_stats", "mix", lambda: 3.0 * jnp.eye(x.shape[-1]))
    return nn.Dense(4)(x @ mix.value)


def test_only_params_are_spectrally_normalized():
  # flax.linen.SpectralNorm would also divide the 2D statistic "mix" by its
  # spectral norm (and add mix/u, mix/sigma); a statistic is not a weight.
  x = _data((2, 3))
  module = normzoo.SpectralNorm(_Mixer())
  variables = module.init(KEY, x, update_stats=False)
  assert set(variables["batch_stats"]) == {"layer_instance", "layer_instance/Dense_0/kernel/u",
                                           "layer_instance/Dense_0/kernel/sigma"}
  y, _ = module.apply(variables, x, update_stats=True, mutable=["batch_stats"])
  params = variables["params"]["layer_instance"]["Dense_0"]
  w_bar, _, _ = reparam.spectral_normalize(
      params["kernel"], variables["batch_stats"]["layer_instance/Dense_0/kernel/u"])
  np.testing.assert_allclose(np.asarray(y), np.asarray((x @ (3.0 * jnp.eye(3))) @ w_bar
                                                       + params["bias"]), rtol=1e-5, atol=1e-6)


def test_wrapped_batch_norm_statistics_still_update():
  x = _data((8, 3))
  module = normzoo.SpectralNorm(nn.Sequential([nn.Dense(4),
                                               nn.BatchNorm(use_running_average=False)]))
  variables = module.init(KEY, x, update_stats=False)
  _, updates = module.apply(variables, x, update_stats=False, mutable=["batch_stats"])
  before = variables["batch_stats"]["layer_instance"]["layers_1"]["mean"]
  after = updates["batch_stats"]["layer_instance"]["layers_1"]["mean"]
  assert float(jnp.max(jnp.abs(after - before))) > 0.0


def test_readme_reparam_example_runs():
  import pathlib
  readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
  section = readme.split("#### Weight reparametrizations", 1)[1]
  code = section.split("```python\n", 1)[1].split("```", 1)[0]
  exec(compile(code, "README.md", "exec"), {})
