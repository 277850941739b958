"""The Pallas row kernels (layer norm and RMS norm over the last axis).

On CPU they run in the Pallas interpreter (``interpret=True``): the same
kernel code, block layout and masking as on a GPU, checked against float64
oracles and against normzoo's XLA path. The CUDA lowering is checked too
(jax.export for the "cuda" platform produces the Triton kernels without a
GPU), which catches block shapes and operations Triton refuses. The
compiled-kernel test runs only where JAX has a GPU.
"""

import contextlib
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import normzoo
from normzoo.norms import pallas_rows
from tests.norms import oracle

RNG = np.random.default_rng(7)
KEY = jax.random.PRNGKey(0)
EPS = 1e-5
layer = functools.partial(normzoo.pallas_layer_norm, epsilon=EPS, interpret=True)
rms = functools.partial(normzoo.pallas_rms_norm, epsilon=EPS, interpret=True)


def _data(shape, loc=0.0, spread=1.0, dtype=np.float32):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32), dtype)


# Rows and features that are not powers of two (masked blocks), one row
# wider than a forward block (1000 -> 1024 columns), and a leading shape.
SHAPES = [(67, 768), (3, 1000), (4, 5, 64), (2, 8)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loc", [0.0, 1e4])
def test_layer_norm_matches_float64_oracle(shape, loc):
  c = shape[-1]
  x, w = _data(shape, loc, 2.0), _data(shape)
  scale, bias = _data((c,), 1.0, 0.3), _data((c,), 0.0, 0.3)
  y = jax.jit(layer)(x, scale, bias)
  want, _, _ = oracle.np_normalize(x, (x.ndim - 1,), scale, bias, EPS, param_axes=(x.ndim - 1,))
  # A float32 mean of that magnitude is a few ulps of loc off, which shifts
  # x_hat by that over the std (as for the XLA path, tests/norms/test_functional.py);
  # the variance is centred, so nothing worse: E[x^2] - E[x]^2 would be off by O(1).
  shift = 4 * float(np.spacing(np.float32(loc))) / 2.0
  np.testing.assert_allclose(y, want, rtol=0, atol=3e-5 + shift * 1.5)
  got = jax.jit(jax.grad(lambda x, s, b: jnp.sum(layer(x, s, b) * w), argnums=(0, 1, 2)))(
      x, scale, bias)
  ref = oracle.naive_grads(
      lambda x, s, b, w: jnp.sum(oracle.naive_normalize(x, (x.ndim - 1,), s, b, EPS) * w),
      x, scale, bias, w)
  rows = x.size // c
  np.testing.assert_allclose(got[0], ref[0], rtol=2e-4, atol=2e-5 + shift)
  # dscale sums w * x_hat over the rows: up to rows * shift * mean|w| apart.
  np.testing.assert_allclose(got[1], ref[1], rtol=2e-4, atol=1e-4 + rows * shift)
  np.testing.assert_allclose(got[2], ref[2], rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("magnitude", [1.0, 1e25])
def test_rms_norm_matches_float64_oracle_without_overflow(shape, magnitude):
  c = shape[-1]
  x, w, scale = _data(shape, 0.3) * magnitude, _data(shape), _data((c,), 1.0, 0.3)
  y = jax.jit(rms)(x, scale)
  want = oracle.np_rms_norm(x, EPS, scale)
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
  got = jax.jit(jax.grad(lambda x, s: jnp.sum(rms(x, s) * w), argnums=(0, 1)))(x, scale)
  ref = oracle.naive_grads(lambda x, s, w: jnp.sum(oracle.naive_rms_norm(x, -1, s, EPS) * w), x, scale, w)
  assert all(np.all(np.isfinite(g)) for g in got)
  np.testing.assert_allclose(got[0], ref[0], rtol=2e-4, atol=1e-6 / magnitude)
  np.testing.assert_allclose(got[1], ref[1], rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("magnitude", [9e37, 3e38])
def test_rms_norm_near_the_float32_limit(magnitude):
  # max|x| >= 2^126: a scaling of 2^-127 or 2^-128 would be subnormal and
  # flush to zero (NaN output); both paths stop at 2^-126.
  x = _data((3, 16), 0.0, 0.3) * magnitude
  want = oracle.np_rms_norm(x, EPS)
  for f in (rms, functools.partial(normzoo.rms_norm, epsilon=EPS)):
    np.testing.assert_allclose(f(x), want, rtol=1e-5)
    assert np.all(np.isfinite(jax.grad(lambda x: jnp.sum(f(x) * x / magnitude))(x)))


def test_rms_norm_tiny_and_zero_rows_are_left_to_epsilon():
  x = jnp.concatenate([jnp.full((1, 16), 1e-20), jnp.zeros((1, 16))])
  np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(rms(x)))(x), 1 / np.sqrt(EPS), rtol=1e-5)
  assert np.all(np.asarray(rms(x))[1] == 0)


@pytest.mark.parametrize("use_scale,use_bias", [(False, False), (True, False), (False, True)])
def test_optional_parameters_and_bf16_match_the_xla_path(use_scale, use_bias):
  x, w = _data((10, 96), 0.5, 1.5, jnp.bfloat16), _data((10, 96))
  scale = _data((96,), 1.0, 0.3) if use_scale else None
  bias = _data((96,), 0.0, 0.3) if use_bias else None
  for ours, theirs, args in (
      (layer, functools.partial(normzoo.layer_norm, epsilon=EPS), (scale, bias)),
      (rms, functools.partial(normzoo.rms_norm, epsilon=EPS), (scale,))):
    y_o, y_t = ours(x, *args), theirs(x, *args)
    assert y_o.dtype == y_t.dtype  # flax's promotion rule: float32 with f32 params, else bf16
    np.testing.assert_allclose(np.asarray(y_o, np.float32), np.asarray(y_t, np.float32),
                               rtol=1e-2, atol=1e-2)  # one bf16 rounding of the output
    loss = lambda f: lambda x, *p: jnp.sum(f(x, *p).astype(jnp.float32) * w)
    live = [i for i, p in enumerate((x, *args)) if p is not None]
    g_o = jax.jit(jax.grad(loss(ours), argnums=live))(x, *args)
    g_t = jax.jit(jax.grad(loss(theirs), argnums=live))(x, *args)
    for a, b in zip(g_o, g_t):
      assert a.dtype == b.dtype
      np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                 rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("shape", [(67, 768), (45, 256)])
def test_backward_walking_several_blocks_per_instance(shape, monkeypatch):
  # Small inputs get one block per backward instance; with the instance
  # minimum lifted, each walks up to 32 rows and the last span is ragged.
  monkeypatch.setattr(pallas_rows, "_MIN_INSTANCES", 1)
  x, w = _data(shape, 0.5, 2.0), _data(shape)
  scale, bias = _data(shape[-1:], 1.0, 0.3), _data(shape[-1:])
  for ours, theirs, params in (
      (layer, functools.partial(normzoo.layer_norm, epsilon=EPS), (scale, bias)),
      (rms, functools.partial(normzoo.rms_norm, epsilon=EPS), (scale,))):
    argnums = tuple(range(1 + len(params)))
    got = jax.jit(jax.grad(lambda *a: jnp.sum(ours(*a) * w), argnums))(x, *params)
    want = jax.jit(jax.grad(lambda *a: jnp.sum(theirs(*a) * w), argnums))(x, *params)
    for a, b in zip(got, want):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_empty_input_gives_empty_output_and_zero_parameter_gradients():
  x = jnp.ones((0, 16))
  scale, bias = jnp.ones(16), jnp.zeros(16)
  assert layer(x, scale, bias).shape == (0, 16) and rms(x, scale).shape == (0, 16)
  g = jax.grad(lambda s, b: jnp.sum(layer(x, s, b)), argnums=(0, 1))(scale, bias)
  assert all(np.all(np.asarray(a) == 0) for a in g)


def _stores(jaxpr):
  """Every store (masked_swap) in ``jaxpr`` and the jaxprs nested in it, kernels included."""
  from jax.extend import core
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "masked_swap":
      found.append(jax.tree_util.tree_unflatten(eqn.params["args_tree"], eqn.invars))
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(sub, core.ClosedJaxpr):
          found += _stores(sub.jaxpr)
        elif isinstance(sub, core.Jaxpr):
          found += _stores(sub)
  return found


@pytest.mark.parametrize("kernel", [layer, rms])
def test_every_store_of_the_kernels_is_masked(kernel):
  # The interpreter pads blocks and drops what lands outside the array, so
  # an unmasked store passes every numerical test on CPU; on a GPU it would
  # write into the next row or past the buffer's end.
  f = jax.grad(lambda x, s: jnp.sum(kernel(x, s)), argnums=(0, 1))
  stores = _stores(jax.make_jaxpr(f)(jnp.ones((5, 24)), jnp.ones(24)).jaxpr)
  # forward: y, mean (or the RMS scaling), inv; backward: dx, dscale and dbias partials
  assert len(stores) == 6
  assert all(mask is not None for _, _, _, mask in stores)


def test_sharded_inputs_are_refused_or_run_per_device():
  from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
  mesh = jax.make_mesh((2,), ("batch",), axis_types=(AxisType.Explicit,))
  x = _data((8, 16), 0.5)
  with pytest.raises(ValueError, match=r"pallas_layer_norm: x is sharded as .*batch"):
    with jax.set_mesh(mesh):
      jax.jit(layer)(jax.device_put(x, NamedSharding(mesh, P("batch"))))
  auto = jax.sharding.Mesh(jax.devices()[:2], ("batch",))
  per_device = lambda check_vma: jax.shard_map(layer, mesh=auto, in_specs=P("batch"),
                                               out_specs=P("batch"), check_vma=check_vma)
  with pytest.raises(ValueError, match=r"varies over the shard_map axes \['batch'\]"):
    jax.jit(per_device(True))(x)
  np.testing.assert_allclose(jax.jit(per_device(False))(x), layer(x), rtol=1e-6, atol=1e-6)


def test_vmap_of_the_kernel_matches_a_loop():
  x = _data((3, 5, 40), 1.0)
  scale, bias = _data((40,), 1.0, 0.3), _data((40,))
  grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(layer(x, scale, bias)))))
  np.testing.assert_allclose(jax.vmap(grad)(x), jnp.stack([grad(xi) for xi in x]),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module,flax_module", [("LayerNorm", nn.LayerNorm),
                                                ("RMSNorm", nn.RMSNorm)])
def test_modules_with_pallas_match_xla_and_keep_flax_variables(module, flax_module, monkeypatch):
  # The modules call the kernel without interpret; on CPU it is run interpreted here.
  name = "pallas_layer_norm" if module == "LayerNorm" else "pallas_rms_norm"
  monkeypatch.setattr(pallas_rows, name,
                      functools.partial(getattr(pallas_rows, name), interpret=True))
  x, w = _data((6, 48), 0.5, 2.0), _data((6, 48))
  cls = getattr(normzoo, module)
  v = flax_module().init(KEY, x)
  v = jax.tree.map(lambda p: p + _data(p.shape, 0.0, 0.3), v)
  assert jax.tree.structure(cls(implementation="pallas").init(KEY, x)) == jax.tree.structure(v)

  def run(m):
    return jax.jit(jax.value_and_grad(lambda v, x: jnp.sum(m.apply(v, x) * w), argnums=(0, 1)))(
        v, x)
  (l_p, g_p), (l_x, g_x) = run(cls(implementation="pallas")), run(cls())
  np.testing.assert_allclose(l_p, l_x, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_p, g_x)


@pytest.mark.parametrize("kwargs,match", [
    (dict(implementation="triton"), r"implementation='triton'; valid: 'xla', 'pallas'"),
    (dict(implementation="pallas", reduction_axes=(1, 2)), r"last axis only; got reduction_axes"),
    (dict(implementation="pallas", feature_axes=1), r"last axis only; got feature_axes=1"),
    (dict(implementation="pallas", axis_name="batch"), r"axis_name='batch'"),
])
def test_modules_refuse_what_the_kernel_cannot_do(kwargs, match):
  x = jnp.ones((2, 3, 8))
  for cls in (normzoo.LayerNorm, normzoo.RMSNorm):
    with pytest.raises(ValueError, match=match):
      cls(**kwargs).init(KEY, x)
  with pytest.raises(ValueError, match="takes no mask"):
    normzoo.LayerNorm(implementation="pallas").init(KEY, x, mask=jnp.ones(x.shape, bool))


def test_functions_refuse_bad_input():
  x = jnp.ones((4, 8))
  if jax.default_backend() != "gpu":
    with pytest.raises(ValueError, match="needs a GPU; the default backend is 'cpu'"):
      normzoo.pallas_layer_norm(x)
  with pytest.raises(ValueError, match=r"x.shape\[-1\] = 16385 features"):
    normzoo.pallas_rms_norm(jnp.ones((2, pallas_rows.MAX_FEATURES + 1)), interpret=True)
  with pytest.raises(ValueError, match="scale"):
    normzoo.pallas_layer_norm(x, jnp.ones(7), interpret=True)
  with pytest.raises(ValueError, match="epsilon"):
    normzoo.pallas_rms_norm(x, epsilon=0.0, interpret=True)


def test_second_order_derivatives_are_refused_by_name():
  x = _data((4, 8))
  for kernel, name in ((layer, "pallas_layer_norm"), (rms, "pallas_rms_norm")):
    f = lambda x: jnp.sum(kernel(x) ** 3)
    jax.grad(f)(x)  # first order is fine
    with pytest.raises(NotImplementedError, match=f"{name}: .* not differentiable twice"):
      jax.grad(lambda x: jnp.sum(jax.grad(f)(x) ** 2))(x)
    with pytest.raises(NotImplementedError, match=name):
      jax.hessian(f)(x)


def _cuda_target():
  """Triton compiles for a compute capability: without a GPU to read it from,
  JAX 0.11 wants an abstract device that says which (here an H100's, sm_90)."""
  if not hasattr(jax.sharding, "AbstractDevice"):  # older JAX read none
    return contextlib.nullcontext()
  return jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh(
      (), (), abstract_device=jax.sharding.AbstractDevice(
          device_kind="NVIDIA H100", num_cores=None, platform="gpu")))


@pytest.mark.parametrize("rows,features,dtype", [
    (8192, 768, jnp.float32), (100, 1000, jnp.bfloat16), (7, pallas_rows.MAX_FEATURES, jnp.float32),
    (33, 1, jnp.float32), (4096, 64, jnp.float16)])
@pytest.mark.parametrize("centered", [True, False])
def test_kernels_lower_to_triton_for_cuda(rows, features, dtype, centered):
  config = pallas_rows._Config(centered, EPS, jnp.dtype(dtype), True, centered, False)
  params = (jnp.ones(features), jnp.zeros(features) if centered else None)
  fwd = lambda x: pallas_rows._rows_normalize(x, *params, config)
  fwd_bwd = jax.grad(lambda x: jnp.sum(fwd(x).astype(jnp.float32) ** 2))
  unchecked = [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
  for fn, kernels in ((fwd, 1), (fwd_bwd, 2)):
    with _cuda_target():
      exported = export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=unchecked)(
          jax.ShapeDtypeStruct((rows, features), dtype))
    assert exported.mlir_module().count("__gpu$xla.gpu.triton") == kernels


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="compiled Triton kernels need a GPU")
@pytest.mark.parametrize("shape", [(8192, 768), (67, 1000), (512, 4096)])
def test_compiled_kernels_match_the_interpreter_and_xla(shape):
  x, w = _data(shape, 0.5, 2.0), _data(shape)
  scale, bias = _data(shape[-1:], 1.0, 0.3), _data(shape[-1:])
  for kernel, xla, params in (
      (normzoo.pallas_layer_norm, normzoo.layer_norm, (scale, bias)),
      (normzoo.pallas_rms_norm, normzoo.rms_norm, (scale,))):
    for interpret in (False, True):
      f = functools.partial(kernel, epsilon=EPS, interpret=interpret)
      got = jax.jit(jax.value_and_grad(lambda x, *p: jnp.sum(f(x, *p) * w), argnums=(0, 1)))(
          x, *params)
      want = jax.jit(jax.value_and_grad(
          lambda x, *p: jnp.sum(xla(x, *p, epsilon=EPS) * w), argnums=(0, 1)))(x, *params)
      np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
      for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-4)
