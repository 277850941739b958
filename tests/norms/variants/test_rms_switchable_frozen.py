"""RMSNorm against flax.linen.RMSNorm, SwitchableNorm against a float64 oracle, FrozenBatchNorm."""

import contextlib
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from tests.norms import oracle
from tests.norms.variants import np_ref

RNG = np.random.default_rng(13)
KEY = jax.random.PRNGKey(0)
C = 6


def _data(shape, loc=0.0, spread=1.0):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32))


@pytest.fixture(params=["cond", "select"])
def guard(request):
  """Both forms of RMSNorm's overflow guard (CPU's default is "cond", GPU/TPU's "select")."""
  with normzoo.backend_policy(rms_overflow_guard=request.param):
    yield request.param


@pytest.mark.parametrize("kwargs,shape", [
    (dict(reduction_axes=(1, 2), feature_axes=(1, 2), epsilon=1e-3), (3, 4, C)),
    (dict(use_scale=False), (8, C)),
])
def test_rms_matches_flax_outputs_and_gradients(kwargs, shape, guard):
  x, w = _data(shape, 0.5, 2.0), _data(shape)
  v = nn.RMSNorm(**kwargs).init(KEY, x)
  v = jax.tree.map(lambda p: p + _data(p.shape, 0.0, 0.3), v)
  assert jax.tree.structure(normzoo.RMSNorm(**kwargs).init(KEY, x)) == jax.tree.structure(v)

  def run(module):
    return jax.jit(jax.value_and_grad(lambda v, x: jnp.sum(module.apply(v, x) * w),
                                      argnums=(0, 1)))(v, x)
  (l_o, g_o), (l_t, g_t) = run(normzoo.RMSNorm(**kwargs)), run(nn.RMSNorm(**kwargs))
  np.testing.assert_allclose(l_o, l_t, rtol=1e-5)
  np.testing.assert_allclose(normzoo.RMSNorm(**kwargs).apply(v, x),
                             nn.RMSNorm(**kwargs).apply(v, x), atol=1e-6, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_o, g_t)


def test_rms_defaults_match_flax_and_large_inputs_do_not_overflow(guard):
  theirs = {f.name: f.default for f in dataclasses.fields(nn.RMSNorm) if f.name not in
            ("parent", "name")}
  ours = {f.name: f.default for f in dataclasses.fields(normzoo.RMSNorm)}
  assert ours == {**ours, **theirs}
  for x in (_data((3, C)) * 1e25, (_data((3, C)) * 1e30).astype(jnp.bfloat16)):
    y = normzoo.rms_norm(x, dtype=jnp.float32)
    x64 = np.asarray(x.astype(jnp.float32), np.float64)
    want = oracle.np_rms_norm(x64, 1e-6)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, want, rtol=1e-5)
    # flax's x^2 overflows to inf here and its output collapses to 0.
    flax_y = nn.RMSNorm().apply({"params": {"scale": jnp.ones(C)}}, x)
    assert not np.allclose(np.asarray(flax_y, np.float64), want, rtol=1e-2)
  # Tiny inputs are untouched by the rescaling (epsilon dominates, gradient 1/sqrt(eps)).
  g = jax.grad(lambda x: jnp.sum(normzoo.rms_norm(x)))(jnp.full((1, C), 1e-20))
  np.testing.assert_allclose(g, 1e3, rtol=1e-5)


def test_rms_bfloat16_input_has_float32_statistics(guard):
  # bf16 in, bf16 out: the statistics and the product run in float32, so the
  # output is the float64 answer rounded once to bf16 (relative error <= 2^-8).
  x = _data((4, 3, 64), 3.0, 2.0).astype(jnp.bfloat16)
  scale = _data((64,), 1.0, 0.2).astype(jnp.bfloat16)
  x64, s64 = (np.asarray(a.astype(jnp.float32), np.float64) for a in (x, scale))
  inv = 1.0 / np.sqrt((x64 ** 2).mean(-1, keepdims=True) + 1e-6)
  y = jax.jit(normzoo.rms_norm)(x, scale)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y.astype(jnp.float32)), x64 * inv * s64, rtol=2 ** -8)
  gx = jax.jit(jax.grad(lambda x: jnp.sum(normzoo.rms_norm(x, scale).astype(jnp.float32))))(x)
  # d/dx sum(s * x * inv) = inv * (s - x_hat * mean(s * x_hat)), x_hat = x * inv.
  x_hat = x64 * inv
  want = inv * (s64 - x_hat * (s64 * x_hat).mean(-1, keepdims=True))
  np.testing.assert_allclose(np.asarray(gx.astype(jnp.float32)), want,
                             rtol=2 ** -7, atol=2 ** -7 * np.abs(want).max())


def test_rms_mask_uses_valid_elements_only(guard):
  x = _data((2, C), 1.0, 2.0)
  mask = np.array([[1, 1, 0, 1, 0, 1]] * 2, bool)
  y = normzoo.rms_norm(jnp.where(mask, x, 1e6), mask=mask)
  x64 = np.asarray(x, np.float64)
  ms = np.where(mask, x64 ** 2, 0).sum(-1, keepdims=True) / 4
  np.testing.assert_allclose(y[mask], (x64 / np.sqrt(ms + 1e-6))[mask], rtol=1e-5)


@pytest.mark.parametrize("magnitude", [1.0, 1e25])
@pytest.mark.parametrize("masked", [False, True])
def test_rms_hand_written_gradients_match_float64_autodiff(magnitude, masked, guard):
  """The closed-form backward (fast and overflow-safe branches) against naive float64 autodiff."""
  shape, axes = (3, 4, C), (1, 2)
  x, w, scale = _data(shape, 0.3, 1.0) * magnitude, _data(shape), _data((1, 1, C), 1.0, 0.3)
  mask = (RNG.random(shape) > 0.3) if masked else np.ones(shape, bool)
  mask[:, 0, 0] = True
  kwargs = dict(reduction_axes=axes, feature_axes=-1, epsilon=1e-3,
                mask=jnp.asarray(mask) if masked else None)
  ours = jax.jit(jax.grad(lambda x, s: jnp.sum(normzoo.rms_norm(x, s[0, 0], **kwargs) * w),
                          argnums=(0, 1)))(x, scale)
  want = oracle.naive_grads(lambda x, s, w: jnp.sum(oracle.naive_rms_norm(x, axes, s, 1e-3, mask) * w),
                            x, scale, w)
  assert all(np.all(np.isfinite(g)) for g in ours)
  np.testing.assert_allclose(ours[0], want[0], rtol=2e-4, atol=1e-6 / magnitude)
  np.testing.assert_allclose(ours[1], want[1], rtol=2e-4, atol=1e-5)


def test_rms_only_overflowing_rows_change_nothing_for_the_others(guard):
  """One row overflows x^2: every row still matches float64 (the whole call takes the safe branch)."""
  x = np.array(_data((4, C), 0.5, 2.0))
  x[2] *= 1e30
  y = normzoo.rms_norm(jnp.asarray(x))
  np.testing.assert_allclose(y, oracle.np_rms_norm(x, 1e-6), rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_rms_rows_beyond_2_to_126_match_float64_with_gradients(masked, guard):
  """Rows whose RMS exceeds 2^126 (8.5e37), where 1 / rms is subnormal.

  Rows 0 and 2 are there (RMS 3e38 and 2^127), row 1 is large but below
  (RMS about 1e37), row 3 is ordinary. A single factor 1 / rms (or s / rms)
  would flush to zero in rows 0 and 2, and their output and gradient with
  it; the forward and the hand-written backward must still match float64,
  row by row. The cotangent is scaled so that dx is a normal float32 number.
  """
  x = np.array(_data((4, 2, C), 0.0, 1.0))
  x[0] = np.sign(x[0]) * 3e38            # RMS 3e38: 1 / rms = 3.3e-39
  x[1] *= 1e37                            # RMS ~1e37, max |x| a few e37
  x[2] = np.sign(x[2]) * 2.0 ** 127       # RMS 2^127 exactly
  x = jnp.asarray(x)
  w, scale = _data(x.shape) * 1e30, _data((C,), 1.0, 0.3)
  mask = np.ones(x.shape, bool)
  if masked:
    mask[..., 1] = False
  kwargs = dict(reduction_axes=(1, 2), feature_axes=-1, epsilon=1e-6,
                mask=jnp.asarray(mask) if masked else None)
  f = lambda x, s: normzoo.rms_norm(x, s, **kwargs)
  with oracle.float64():
    y64 = np.asarray(oracle.naive_rms_norm(jnp.asarray(np.asarray(x, np.float64)), (1, 2),
                                           jnp.asarray(np.asarray(scale, np.float64)), 1e-6,
                                           mask))
  np.testing.assert_allclose(jax.jit(f)(x, scale), y64, rtol=1e-5, atol=1e-6)
  got = jax.jit(jax.grad(lambda x, s: jnp.sum(f(x, s) * w), argnums=(0, 1)))(x, scale)
  want = oracle.naive_grads(
      lambda x, s, w: jnp.sum(oracle.naive_rms_norm(x, (1, 2), s, 1e-6, mask) * w), x, scale, w)
  assert all(np.all(np.isfinite(g)) for g in got)
  # dx row by row: the rows' gradients differ by 38 orders of magnitude.
  for row in range(x.shape[0]):
    np.testing.assert_allclose(got[0][row], want[0][row], rtol=2e-4,
                               atol=1e-4 * np.abs(want[0][row]).max())
  np.testing.assert_allclose(got[1], want[1], rtol=2e-4, atol=1e-4 * np.abs(want[1]).max())


@pytest.mark.parametrize("masked", [False, True])
def test_rms_overflow_guards_agree_on_float32_rows(masked):
  """"select" against "cond" on float32 rows, two of them overflowing x^2: outputs and gradients."""
  x = np.array(_data((5, 3, C), 0.5, 2.0))
  x[1] *= 1e30
  x[3] = np.sign(x[3]) * 3e38
  mask = jnp.asarray(RNG.random(x.shape) > 0.3) if masked else None
  w, scale = _data(x.shape), _data((C,), 1.0, 0.3)

  f = lambda x, s: normzoo.rms_norm(x, s, reduction_axes=(1, 2), mask=mask)
  forward = jax.jit(f)
  backward = jax.jit(jax.grad(lambda x, s: jnp.sum(f(x, s) * w), argnums=(0, 1)))

  def run(guard):
    # The same jitted functions under both guards: the policy is part of their cache key.
    with normzoo.backend_policy(rms_overflow_guard=guard):
      return forward(x, scale), backward(x, scale)
  (y_c, g_c), (y_s, g_s) = run("cond"), run("select")
  np.testing.assert_allclose(y_s, y_c, rtol=1e-6, atol=1e-7)
  for a, b in zip(g_s, g_c):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def _row_scaled_rms(x, valid, epsilon, xp=np):
  """RMS norm over axes (1, 2), each row divided by its maximum first: exact at any magnitude.

  NumPy (``xp=np``) for outputs: XLA flushes the subnormal ``1 / top`` of a
  row near 1e308 to zero. ``xp=jnp`` gives gradients, for rows where it does not.
  """
  top = xp.max(xp.where(valid, xp.abs(x), 0), axis=(1, 2), keepdims=True)
  if xp is jnp:
    top = jax.lax.stop_gradient(top)
  xs = x / top
  ms = xp.sum(xp.where(valid, xs ** 2, 0), axis=(1, 2), keepdims=True) / valid.sum(
      axis=(1, 2), keepdims=True)
  return xs / xp.sqrt(ms + epsilon / top / top)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("guard", ["cond", "select", "axis_name"])
def test_rms_float64_rows_beyond_float32_range(guard, masked):
  """Float64 rows whose squares overflow float64 (1e200; 1.5e308, beyond 2^1022, where the
  scaling stops at the smallest normal power of two), under each overflow guard and the
  collective path's scaling, against a row-scaled float64 oracle: outputs and gradients."""
  from normzoo.norms.variants import rms
  policy = (contextlib.nullcontext() if guard == "axis_name"
            else normzoo.backend_policy(rms_overflow_guard=guard))
  with oracle.float64(), policy:
    x = RNG.standard_normal((3, 4, C))
    x[1] *= 1e200
    x[2] = np.sign(x[2]) * 1.5e308
    valid = (RNG.random((3, 4, 1)) > 0.3).repeat(C, 2) if masked else np.ones(x.shape, bool)
    valid[:, 0] = True
    w = RNG.standard_normal(x.shape)
    mask = jnp.asarray(valid) if masked else None
    if guard == "axis_name":
      # scaled_inverse_rms is what rms_norm applies with axis_name: one device's worth here.
      def f(x):
        s, inv = rms.scaled_inverse_rms(x, (1, 2), 1e-6, mask=mask)
        return (x * s) * inv
    else:
      f = lambda x: normzoo.rms_norm(x, reduction_axes=(1, 2), mask=mask)
    x = jnp.asarray(x)
    got = jax.jit(f)(x)
    assert got.dtype == jnp.float64
    want = _row_scaled_rms(np.asarray(x), valid, 1e-6)
    np.testing.assert_allclose(np.asarray(got)[valid], want[valid], rtol=1e-12)
    dx = jax.jit(jax.grad(lambda x: jnp.sum(jnp.where(valid, f(x), 0) * w)))(x)
    dx_want = jax.grad(lambda x: jnp.sum(
        jnp.where(valid, _row_scaled_rms(x, jnp.asarray(valid), 1e-6, jnp), 0) * w))(x)
    # Row 2's gradients are near 1e-308, where float64 turns subnormal and
    # XLA flushes to zero: rows 0 and 1, 1e200 apart, are compared.
    for row in range(2):
      np.testing.assert_allclose(dx[row][valid[row]], dx_want[row][valid[row]], rtol=1e-10,
                                 atol=1e-12 * np.abs(dx_want[row]).max())


def test_rms_under_shard_map_matches_one_device():
  """Per-device RMS statistics under typed shard_map: the replicated scale's gradient is summed."""
  from jax.sharding import Mesh, PartitionSpec as P
  mesh = Mesh(np.array(jax.devices()[:8]), ("batch",))
  x, scale = _data((16, 5, C), 0.5, 2.0), _data((C,), 1.0, 0.3)

  def loss(x, scale):
    return jnp.sum(normzoo.rms_norm(x, scale) ** 2 * jnp.arange(C))

  def sharded(x, scale):
    local = jax.shard_map(lambda x, s: jax.lax.psum(loss(x, s), "batch"), mesh=mesh,
                          in_specs=(P("batch"), P()), out_specs=P())
    return local(x, scale)
  got = jax.jit(jax.grad(sharded, argnums=(0, 1)))(x, scale)
  want = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, scale)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


MW, VW = jnp.asarray([0.3, -0.5, 1.0]), jnp.asarray([-0.2, 0.8, 0.1])
SCALE, BIAS = _data((C,), 1.0, 0.3), _data((C,), 0.0, 0.3)


def test_switchable_training_and_eval_match_oracle():
  x = _data((4, 3, 5, C), 1.0, 2.0)
  sn = normzoo.SwitchableNorm(momentum=0.7)
  v = sn.init(KEY, x, use_running_average=False)
  assert set(v["params"]) == {"scale", "bias", "mean_weight", "var_weight"}
  mean, var = _data((C,), 0.0, 0.5), jnp.abs(_data((C,), 1.0, 0.5)) + 0.1
  v = {"params": {"scale": SCALE, "bias": BIAS, "mean_weight": MW, "var_weight": VW},
       "batch_stats": {"mean": mean, "var": var}}
  y, upd = jax.jit(lambda v, x: sn.apply(v, x, use_running_average=False,
                                         mutable=["batch_stats"]))(v, x)
  y_np, bm, bv = np_ref.switchable(x, SCALE, BIAS, MW, VW, 1e-5)
  np.testing.assert_allclose(y, y_np, atol=3e-5)
  np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.7 * np.asarray(mean) + 0.3 * bm,
                             atol=1e-5)
  np.testing.assert_allclose(upd["batch_stats"]["var"], 0.7 * np.asarray(var) + 0.3 * bv,
                             rtol=1e-5)
  y_eval = sn.apply(v, x, use_running_average=True)
  np.testing.assert_allclose(y_eval, np_ref.switchable(x, SCALE, BIAS, MW, VW, 1e-5, mean, var)[0],
                             atol=3e-5)
  with pytest.raises(ValueError, match="needs spatial axes"):
    sn.init(KEY, _data((4, C)), use_running_average=False)


def test_switchable_gradients_match_naive_float64():
  x = _data((3, 2, 3, C), 1.0, 2.0)
  mean, var = jnp.zeros(C), jnp.ones(C)

  def naive(x, s, b, mw, vw):
    wm, wv = jax.nn.softmax(mw), jax.nn.softmax(vw)
    stats = [(jnp.mean(x, a, keepdims=True), jnp.var(x, a, keepdims=True))
             for a in ((1, 2), (1, 2, 3), (0, 1, 2))]
    mu = sum(w * m for w, (m, _) in zip(wm, stats))
    s2 = sum(w * v for w, (_, v) in zip(wv, stats))
    return (x - mu) / jnp.sqrt(s2 + 1e-5) * s + b

  w = _data(x.shape)
  ours = lambda *a: jnp.sum(normzoo.switchable_norm(*a, mean, var)[0] * w)
  got = jax.jit(jax.grad(ours, argnums=tuple(range(5))))(x, SCALE, BIAS, MW, VW)
  want = oracle.naive_grads(jax.jit(lambda *a: jnp.sum(naive(*a) * jnp.asarray(w, a[0].dtype))),
                            x, SCALE, BIAS, MW, VW)
  for g, want_g in zip(got, want):
    np.testing.assert_allclose(g, want_g, rtol=1e-4, atol=1e-4)


def test_frozen_batch_norm_always_uses_running_statistics():
  x = _data((8, 2, 2, C), 3.0, 2.0)
  bn = normzoo.BatchNorm()
  v = bn.init(KEY, x, use_running_average=False)
  v = {"params": {"scale": SCALE, "bias": BIAS},
       "batch_stats": {"mean": _data((C,)), "var": jnp.abs(_data((C,), 1.0, 0.5)) + 0.1}}
  y_eval = bn.apply(v, x, use_running_average=True)
  for freeze in (False, True):
    frozen = normzoo.FrozenBatchNorm(freeze_params=freeze)
    assert jax.tree.structure(frozen.init(KEY, x, use_running_average=False)) == \
        jax.tree.structure(v)

    def loss(params, module):
      y, upd = module.apply({**v, "params": params}, x, use_running_average=False,
                            mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y)), (y, upd)
    (_, (y, upd)), grads = jax.value_and_grad(loss, has_aux=True)(v["params"], frozen)
    np.testing.assert_allclose(y, y_eval, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, upd["batch_stats"], v["batch_stats"])
    want = jax.grad(lambda p: jnp.sum(jnp.sin(bn.apply({**v, "params": p}, x,
                                                       use_running_average=True))))(v["params"])
    if freeze:
      jax.tree.map(lambda g: np.testing.assert_array_equal(g, 0.0), grads)
    else:
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), grads, want)


@pytest.fixture
def shifted_variance():
  with normzoo.backend_policy(variance="shifted"):
    yield


def test_one_pass_statistics_path(shifted_variance):
  """The shifted one-pass moments (the GPU/TPU default) on CPU, with |mean| >> std."""
  x = _data((4, 3, 5, C), 1e3, 1.0)
  y, _, _ = normzoo.switchable_norm(x, SCALE, BIAS, MW, VW, jnp.zeros(C), jnp.ones(C))
  # x * a + b rounding: error ~ float32 eps * |mean| / std (see normalize._affine).
  np.testing.assert_allclose(y, np_ref.switchable(x, SCALE, BIAS, MW, VW, 1e-5)[0], atol=5e-4)
  v1 = _data((C,), 0.0, 1e-3)
  y, var = normzoo.evonorm_b0(x, SCALE, BIAS, v1, jnp.ones(C), momentum=0.0)
  np.testing.assert_allclose(y, np_ref.evonorm_b0(x, SCALE, BIAS, v1, 1e-5), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(var, np.asarray(x, np.float64).var((0, 1, 2)), rtol=1e-4)


@pytest.fixture
def fresh_traces():
  """Clears JAX's trace caches before and after: a test that fakes the backend traces anew."""
  jax.clear_caches()
  yield
  jax.clear_caches()


@pytest.mark.parametrize("backend,guard,barrier", [
    ("cpu", "cond", True), ("gpu", "select", False), ("tpu", "select", True)])
def test_rms_backend_choices_reach_the_traced_program(monkeypatch, fresh_traces, backend,
                                                      guard, barrier):
  # The overflow guard and the backward's fusion barrier are chosen from
  # the default backend at trace time; the program must carry that choice.
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  x, g = _data((4, C)), _data((4, C))
  scale = jnp.linspace(0.5, 2.0, C)
  pullback = lambda x, g: jax.vjp(lambda x: normzoo.rms_norm(x, scale), x)[1](g)
  text = str(jax.make_jaxpr(pullback)(x, g))
  assert (" cond[" in text) == (guard == "cond")
  assert ("optimization_barrier" in text) == barrier
