"""Functional normalizers against float64 NumPy and naive float64 autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.norms import functional as F
from normzoo.norms import normalize, stats
from tests.norms import oracle

RNG = np.random.default_rng(0)


def _data(shape, loc=0.5, spread=2.0):
  return (loc + spread * RNG.standard_normal(shape)).astype(np.float32)


# Batch norm over 1d (N, C), 1d with length (N, L, C), 2d, 3d, and channels-first.
BN_CASES = [((32, 6), -1), ((8, 10, 6), -1), ((4, 5, 5, 6), -1), ((2, 3, 4, 4, 5), -1),
            ((4, 6, 5, 5), 1)]


@pytest.mark.parametrize("shape,axis", BN_CASES)
@pytest.mark.parametrize("use_fast_variance", [True, False])
def test_batch_norm_training_matches_numpy(shape, axis, use_fast_variance):
  x = _data(shape)
  c = shape[axis]
  scale, bias = _data((c,), 1.0, 0.3), _data((c,), 0.0, 0.3)
  mean0, var0 = _data((c,), 0.0, 0.1), np.abs(_data((c,), 1.0, 0.1))
  y, new_mean, new_var = F.batch_norm(
      x, scale, bias, mean0, var0, axis=axis, momentum=0.8, epsilon=1e-3,
      use_fast_variance=use_fast_variance)
  axes = tuple(a for a in range(len(shape)) if a != axis % len(shape))
  want, mean, var = oracle.np_normalize(x, axes, scale, bias, 1e-3, param_axes=(axis % len(shape),))
  np.testing.assert_allclose(y, want, atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(new_mean, 0.8 * mean0 + 0.2 * mean.ravel(), atol=1e-6)
  np.testing.assert_allclose(new_var, 0.8 * var0 + 0.2 * var.ravel(), rtol=1e-5)


@pytest.mark.parametrize("shape,axis", BN_CASES[:3])
def test_batch_norm_eval_uses_running_stats(shape, axis):
  x = _data(shape)
  c = shape[axis]
  mean, var = _data((c,), 0.3, 0.1), np.abs(_data((c,), 2.0, 0.3))
  scale, bias = _data((c,), 1.0, 0.3), _data((c,), 0.0, 0.3)
  y, m, v = F.batch_norm(x, scale, bias, mean, var, use_running_average=True, axis=axis)
  shape_c = [1] * len(shape)
  shape_c[axis] = c
  want = ((x.astype(np.float64) - mean.reshape(shape_c)) / np.sqrt(var.reshape(shape_c) + 1e-5)
          * scale.reshape(shape_c) + bias.reshape(shape_c))
  np.testing.assert_allclose(y, want, atol=2e-5, rtol=1e-5)
  assert m is mean and v is var


def test_unbiased_running_var():
  x = _data((5, 3))
  _, _, var = F.batch_norm(x, None, None, np.zeros(3, np.float32), np.zeros(3, np.float32),
                           momentum=0.0, unbiased_running_var=True)
  np.testing.assert_allclose(var, np.var(x.astype(np.float64), axis=0, ddof=1), rtol=1e-5)


@pytest.mark.parametrize("reduction_axes,feature_axes", [(-1, -1), (None, -1), ((1, 2), -1),
                                                         ((2, 3), (2, 3))])
def test_layer_norm_matches_numpy(reduction_axes, feature_axes):
  x = _data((3, 4, 5, 6))
  feat = np.atleast_1d(feature_axes) % 4
  fshape = tuple(x.shape[a] for a in feat)
  scale, bias = _data(fshape, 1.0, 0.3), _data(fshape, 0.0, 0.3)
  y = F.layer_norm(x, scale, bias, reduction_axes=reduction_axes, feature_axes=feature_axes,
                   epsilon=1e-4)
  axes = (1, 2, 3) if reduction_axes is None else tuple(np.atleast_1d(reduction_axes) % 4)
  want, _, _ = oracle.np_normalize(x, axes, scale, bias, 1e-4, param_axes=tuple(feat))
  np.testing.assert_allclose(y, want, atol=3e-5, rtol=1e-5)


@pytest.mark.parametrize("shape,groups", [((3, 4, 4, 8), 4), ((2, 6, 12), 3), ((5, 16), 8)])
def test_group_norm_matches_numpy(shape, groups):
  x = _data(shape)
  c = shape[-1]
  scale, bias = _data((c,), 1.0, 0.3), _data((c,), 0.0, 0.3)
  y = F.group_norm(x, scale, bias, num_groups=groups, epsilon=1e-5)
  np.testing.assert_allclose(y, oracle.np_group_norm(x, groups, scale, bias, 1e-5), atol=3e-5)
  y2 = F.group_norm(x, scale, bias, num_groups=None, group_size=c // groups, epsilon=1e-5)
  np.testing.assert_allclose(y2, y, atol=1e-6)


def test_group_norm_extremes_are_layer_and_instance_norm():
  x = _data((3, 4, 4, 8))
  np.testing.assert_allclose(F.group_norm(x, num_groups=1),
                             F.layer_norm(x, reduction_axes=None), atol=2e-6)
  np.testing.assert_allclose(F.group_norm(x, num_groups=8), F.instance_norm(x), atol=2e-6)


@pytest.mark.parametrize("shape", [(3, 7, 4), (2, 5, 5, 4), (2, 3, 3, 3, 4)])
def test_instance_norm_matches_numpy(shape):
  x = _data(shape)
  scale, bias = _data((4,), 1.0, 0.3), _data((4,), 0.0, 0.3)
  y = F.instance_norm(x, scale, bias)
  axes = tuple(range(1, len(shape) - 1))
  want, _, _ = oracle.np_normalize(x, axes, scale, bias, 1e-6, param_axes=(len(shape) - 1,))
  np.testing.assert_allclose(y, want, atol=3e-5)


# (norm, statistic axes, parameter axes): per-statistic parameters (instance
# norm) and parameters along the reduced axis (layer norm over features).
_ONE_PASS_CASES = {"instance": (F.instance_norm, (1, 2), (3,)),
                   "layer": (F.layer_norm, (3,), (3,))}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("norm", sorted(_ONE_PASS_CASES))
@pytest.mark.parametrize("loc", [0.0, 1e4])
def test_forward_alone_and_under_differentiation_agree(loc, norm, dtype, monkeypatch):
  """Undifferentiated calls may compute the statistics another way (one fused pass).

  Both agree with float64 (of the input as given) to within a few float32
  ulps of ``loc`` over the statistic's std: the rounding of a float32 mean of
  that magnitude; bf16 output adds its own rounding. (bf16 input at 1e4
  has a spacing of 64, so its spread is widened to keep the data distinct.)
  """
  fn_norm, axes, p_axes = _ONE_PASS_CASES[norm]
  # The one-pass form is chosen by size; let this small input take it.
  monkeypatch.setattr(normalize, "_ONE_PASS_MIN_BYTES", 0)
  monkeypatch.setattr(normalize, "_ONE_PASS_MIN_STATISTICS", 1)
  spread = 256.0 if dtype == "bfloat16" and loc else 1.0
  rng = np.random.default_rng(7)  # the same draw whichever tests ran before
  x = jnp.asarray((loc + spread * rng.standard_normal((4, 6, 6, 8))).astype(np.float32))
  x = x.astype(dtype)
  scale, bias = _data((8,), 1.0, 0.3), _data((8,), 0.0, 0.3)
  spec = normalize.StatSpec(axes, 1e-6, None, None, True, jnp.float32)
  assert normalize._fuses_in_one_pass(x, None, spec) == (jax.default_backend() == "cpu")
  fn = lambda x: fn_norm(x, scale, bias, dtype=dtype)
  alone = np.asarray(jax.jit(fn)(x).astype(jnp.float32))
  under_vjp = np.asarray(jax.jit(lambda x: jax.vjp(fn, x)[0])(x).astype(jnp.float32))
  x64 = np.asarray(x.astype(jnp.float32))
  want, _, _ = oracle.np_normalize(x64, axes, scale, bias, 1e-6, param_axes=p_axes)
  # A mean off by a few ulps of loc shifts the output by that over each statistic's std.
  std = np.std(np.asarray(x64, np.float64), axis=axes).min()
  atol = 3e-5 + 4 * float(np.spacing(np.float32(loc))) / std
  rtol = 2 ** -8 if dtype == "bfloat16" else 0.0
  np.testing.assert_allclose(alone, want, atol=atol, rtol=rtol)
  np.testing.assert_allclose(under_vjp, want, atol=atol, rtol=rtol)


def test_narrow_inputs_take_the_one_pass_forward_at_any_size():
  spec = normalize.StatSpec((2,), 1e-6, None, None, True, jnp.float32)
  small = jnp.zeros((64, 64, 256))  # 4096 statistics, 4 MiB in float32
  assert not normalize._fuses_in_one_pass(small, None, spec)
  assert normalize._fuses_in_one_pass(small.astype(jnp.bfloat16), None, spec) == (
      jax.default_backend() == "cpu")
  # A statistic spanning more than the slice limit, or a mask, keeps the checked form.
  wide_rows = jax.ShapeDtypeStruct((4096, 1, 131073), jnp.bfloat16)  # 4096 rows > 512 KiB
  assert not normalize._fuses_in_one_pass(wide_rows, None, spec)
  assert not normalize._fuses_in_one_pass(small.astype(jnp.bfloat16), jnp.ones(small.shape, bool),
                                          spec)


# --- gradients, against autodiff of a naive float64 implementation -------------------------

def _grad_case(fn, naive, x, scale, bias, w):
  ours = jax.grad(lambda x, s, b: jnp.sum(fn(x, s, b) * w), argnums=(0, 1, 2))(x, scale, bias)
  want = oracle.naive_grads(lambda x, s, b: jnp.sum(naive(x, s, b) * w), x, scale, bias)
  for got, ref in zip(ours, want):
    np.testing.assert_allclose(got, ref, atol=5e-5 * max(1.0, np.abs(ref).max()), rtol=1e-4)


@pytest.mark.parametrize("use_fast_variance", [True, False])
def test_batch_norm_gradients(use_fast_variance):
  x, w = _data((6, 3, 3, 4)), _data((6, 3, 3, 4))
  scale, bias = _data((4,), 1.0, 0.5), _data((4,))
  fn = lambda x, s, b: F.batch_norm(x, s, b, use_fast_variance=use_fast_variance)[0]
  naive = lambda x, s, b: oracle.naive_normalize(x, (0, 1, 2), s, b, 1e-5)
  _grad_case(fn, naive, x, scale, bias, w)


@pytest.mark.parametrize("reduction_axes,feature_axes", [(-1, -1), ((1, 2, 3), (1, 2, 3)),
                                                         ((2, 3), (2, 3)), ((1, 2, 3), (2, 3))])
def test_layer_norm_gradients_with_parameters_along_reduced_axes(reduction_axes, feature_axes):
  """Parameters that vary along reduced axes take the backward's full-size branch."""
  x, w = _data((3, 4, 5, 6)), _data((3, 4, 5, 6))
  feat = tuple(np.atleast_1d(feature_axes) % 4)
  axes = tuple(np.atleast_1d(reduction_axes) % 4)
  fshape = tuple(x.shape[a] for a in feat)
  scale, bias = _data(fshape, 1.0, 0.5), _data(fshape)
  pshape = tuple(x.shape[a] if a in feat else 1 for a in range(4))
  fn = lambda x, s, b: F.layer_norm(x, s, b, reduction_axes=reduction_axes,
                                    feature_axes=feature_axes)
  naive = lambda x, s, b: oracle.naive_normalize(x, axes, s.reshape(pshape), b.reshape(pshape),
                                                 1e-6)
  _grad_case(fn, naive, x, scale, bias, w)


def test_layer_group_instance_gradients():
  x, w = _data((3, 4, 4, 8)), _data((3, 4, 4, 8))
  scale, bias = _data((8,), 1.0, 0.5), _data((8,))
  _grad_case(lambda x, s, b: F.layer_norm(x, s, b, reduction_axes=None), 
             lambda x, s, b: oracle.naive_normalize(x, (1, 2, 3), s, b, 1e-6), x, scale, bias, w)
  _grad_case(lambda x, s, b: F.instance_norm(x, s, b),
             lambda x, s, b: oracle.naive_normalize(x, (1, 2), s, b, 1e-6), x, scale, bias, w)

  def naive_gn(x, s, b):
    xg = x.reshape(3, 4, 4, 2, 4)
    ones, zeros = jnp.ones(()), jnp.zeros(())
    return oracle.naive_normalize(xg, (1, 2, 4), ones, zeros, 1e-6).reshape(x.shape) * s + b
  _grad_case(lambda x, s, b: F.group_norm(x, s, b, num_groups=2), naive_gn, x, scale, bias, w)


def test_masked_batch_norm_forward_and_gradients():
  x, w = _data((8, 5)), _data((8, 5))
  x[6:] = 1e6  # padding far from the data must not leak into the statistics
  mask = np.arange(8)[:, None] < 6
  scale, bias = _data((5,), 1.0, 0.5), _data((5,))
  y, mean, var = F.batch_norm(x, scale, bias, mask=mask)
  want, m, v = oracle.np_normalize(x[:6], (0,), scale, bias, 1e-5, param_axes=(1,))
  np.testing.assert_allclose(y[:6], want, atol=2e-5)
  np.testing.assert_allclose(mean, m.ravel(), rtol=1e-6, atol=1e-6)  # float32 sums of O(1) values
  np.testing.assert_allclose(var, v.ravel(), rtol=1e-5)
  fn = lambda x, s, b: F.batch_norm(x, s, b, mask=mask)[0]
  naive = lambda x, s, b: oracle.naive_normalize(x, (0,), s, b, 1e-5, mask=mask)
  x[6:] = _data((2, 5))  # finite values so that the float64 reference is well conditioned
  _grad_case(fn, naive, x, scale, bias, w)


def test_gradient_through_returned_statistics():
  x = _data((7, 3))
  ours = jax.grad(lambda x: jnp.sum(F.batch_norm(x)[1] ** 2) + jnp.sum(F.batch_norm(x)[2]))(x)
  want = oracle.naive_grads(lambda x: jnp.sum(x.mean(0) ** 2) + jnp.sum(x.var(0)), x)[0]
  np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-6)


# --- precision and dtypes ----------------------------------------------------------------

@pytest.mark.parametrize("norm", ["batch", "layer", "group", "instance"])
@pytest.mark.parametrize("use_fast_variance", [True, False])
def test_large_mean_still_normalizes_to_unit_variance(norm, use_fast_variance):
  x = (1e4 + RNG.standard_normal((16, 8, 8, 32))).astype(np.float32)
  fn = {"batch": lambda x: F.batch_norm(x, use_fast_variance=use_fast_variance)[0],
        "instance": lambda x: F.instance_norm(x, use_fast_variance=use_fast_variance),
        "layer": lambda x: F.layer_norm(x, reduction_axes=None, use_fast_variance=use_fast_variance),
        "group": lambda x: F.group_norm(x, num_groups=8, use_fast_variance=use_fast_variance)}[norm]
  y = np.asarray(fn(x), np.float64)
  axes = {"batch": (0, 1, 2), "layer": (1, 2, 3), "group": (1, 2, 3), "instance": (1, 2)}[norm]
  assert np.all(np.abs(y.var(axis=axes) - 1.0) < 1e-2)
  assert np.all(np.abs(y.mean(axis=axes)) < 1e-2)


def test_large_mean_input_defeats_the_one_pass_formula():
  # Guards the test above: the naive E[x^2] - E[x]^2 really fails on this input.
  x = jnp.asarray((1e4 + RNG.standard_normal((16, 8, 8, 32))).astype(np.float32))
  var = jnp.maximum(jnp.mean(x * x, axis=(0, 1, 2)) - jnp.mean(x, axis=(0, 1, 2)) ** 2, 0.0)
  assert float(jnp.max(jnp.abs(var - 1.0))) > 1e-2


@pytest.mark.parametrize("method", ["checked", "shifted", "two_pass", "fused_two_pass"])
@pytest.mark.parametrize("loc", [0.0, 1.0, 1e4])
def test_every_variance_method_matches_float64(method, loc):
  """Each method, forced, on typical and large-mean data, with a group axis too."""
  x = (loc + RNG.standard_normal((6, 5, 4, 16))).astype(np.float32)
  x64 = np.asarray(x, np.float64)
  for axes, groups in (((0, 1, 2), None), ((1, 2), None), ((1, 2), 4)):
    count, mean, m2 = stats.local_moments(jnp.asarray(x), axes, None, method, groups)
    if groups is None:
      want_mean, want_var = x64.mean(axes, keepdims=True), x64.var(axes, keepdims=True)
    else:
      g = x64.reshape(x.shape[:-1] + (groups, 16 // groups))
      want_mean = np.repeat(g.mean((1, 2, 4), keepdims=True), 16 // groups, -1).reshape(6, 1, 1, 16)
      want_var = np.repeat(g.var((1, 2, 4), keepdims=True), 16 // groups, -1).reshape(6, 1, 1, 16)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6, atol=1e-6)
    # fused_two_pass centres on an uncorrected mean, a few ulps of loc off:
    # M2 grows by n * error^2, a relative (error / std)^2 on the variance.
    extra = (4 * float(np.spacing(np.float32(loc)))) ** 2 if method == "fused_two_pass" else 0.0
    np.testing.assert_allclose(m2 / count, want_var, rtol=2e-5 + extra / want_var.min())


def test_checked_single_pass_falls_back_for_every_statistic_when_one_is_unsafe():
  """One channel with |mean| >> std sends the whole call to the two-pass branch."""
  x = RNG.standard_normal((64, 3, 3, 8)).astype(np.float32)
  x[..., 5] += 3e3
  _, var = stats.moments(jnp.asarray(x), (0, 1, 2))
  np.testing.assert_allclose(var, np.asarray(x, np.float64).var((0, 1, 2)), rtol=1e-4)
  # The raw single pass really is wrong on that channel (the check is needed).
  xj = jnp.asarray(x)
  naive = jnp.mean(xj * xj, axis=(0, 1, 2)) - jnp.mean(xj, axis=(0, 1, 2)) ** 2
  assert abs(float(naive[5]) - float(x[..., 5].astype(np.float64).var())) > 1e-2


GROUP_SUM_METHODS = ["block_matmul", "grouped_matmul", "reshape"]


@pytest.mark.parametrize("method", GROUP_SUM_METHODS)
@pytest.mark.parametrize("channels,groups", [(8, 4), (16, 2)])
def test_every_group_sum_method_matches_float64(method, channels, groups):
  """Group norm forward and gradients with each way of summing within groups, forced."""
  with normzoo.backend_policy(group_sum=method):
    _group_norm_case(channels, groups)


def _group_norm_case(channels, groups):
  x, w = _data((3, 4, 4, channels)), _data((3, 4, 4, channels))
  scale, bias = _data((channels,), 1.0, 0.5), _data((channels,))
  y = F.group_norm(x, scale, bias, num_groups=groups, epsilon=1e-5)
  np.testing.assert_allclose(y, oracle.np_group_norm(x, groups, scale, bias, 1e-5), atol=3e-5)

  def naive_gn(x, s, b):
    xg = x.reshape(3, 4, 4, groups, channels // groups)
    ones, zeros = jnp.ones(()), jnp.zeros(())
    return oracle.naive_normalize(xg, (1, 2, 4), ones, zeros, 1e-6).reshape(x.shape) * s + b
  _grad_case(lambda x, s, b: F.group_norm(x, s, b, num_groups=groups), naive_gn, x, scale, bias,
             w)


@pytest.mark.parametrize("method", GROUP_SUM_METHODS)
def test_group_sum_keeps_a_non_finite_value_in_its_group(method):
  """A matrix product's zeros must not spread inf (0 * inf = NaN) to the other groups."""
  s = RNG.standard_normal((2, 12)).astype(np.float32)
  s[0, 4] = np.inf
  got = np.asarray(stats.group_sum(jnp.asarray(s), 3, method))
  want = np.repeat(s.astype(np.float64).reshape(2, 3, 4).sum(-1), 4, axis=-1)
  assert np.all(np.isposinf(got[0, 4:8]))
  finite = np.isfinite(want)
  # A float32 sum is exact to a few ulps of the sum of magnitudes, not of the
  # sum itself (four N(0, 1) values can cancel to almost zero).
  magnitude = np.repeat(np.abs(s.astype(np.float64)).reshape(2, 3, 4).sum(-1), 4, axis=-1)
  np.testing.assert_array_less(np.abs(got[finite] - want[finite]),
                               4 * np.finfo(np.float32).eps * magnitude[finite])


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_input_gets_float32_statistics(dtype):
  x32 = _data((16, 4, 4, 8), 3.0, 1.0)
  x = jnp.asarray(x32, dtype)
  mean, var = stats.moments(x, (0, 1, 2))
  assert mean.dtype == jnp.float32 and var.dtype == jnp.float32
  want_mean, want_var = np.asarray(x, np.float64).mean((0, 1, 2)), np.asarray(x, np.float64).var((0, 1, 2))
  np.testing.assert_allclose(mean, want_mean, rtol=1e-5)
  np.testing.assert_allclose(var, want_var, rtol=1e-4)
  y, m, v = F.batch_norm(x, None, None, jnp.zeros(8), jnp.ones(8), dtype=dtype)
  assert y.dtype == dtype and m.dtype == jnp.float32 and v.dtype == jnp.float32
  want, _, _ = oracle.np_normalize(np.asarray(x, np.float64), (0, 1, 2))
  np.testing.assert_allclose(np.asarray(y, np.float32), want, atol=2e-2)
  gx = jax.grad(lambda x: jnp.sum(F.layer_norm(x, dtype=dtype).astype(jnp.float32) ** 3))(x)
  assert gx.dtype == dtype and bool(jnp.all(jnp.isfinite(gx)))


def test_float64_input_gives_float64_statistics():
  with oracle.float64():
    x = jnp.asarray(RNG.standard_normal((5, 3)), jnp.float64)
    mean, var = stats.moments(x, 0)
    assert mean.dtype == jnp.float64 and var.dtype == jnp.float64
    np.testing.assert_allclose(var, np.var(np.asarray(x), axis=0), rtol=1e-12)


def test_output_dtype_follows_flax_promotion():
  x = jnp.ones((4, 3), jnp.bfloat16) * jnp.arange(4, dtype=jnp.bfloat16)[:, None]
  assert F.batch_norm(x, jnp.ones(3), jnp.zeros(3))[0].dtype == jnp.float32
  assert F.batch_norm(x)[0].dtype == jnp.bfloat16
  assert F.batch_norm(x, jnp.ones(3), jnp.zeros(3), dtype=jnp.bfloat16)[0].dtype == jnp.bfloat16
