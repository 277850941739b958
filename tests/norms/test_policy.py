"""The backend policy: overrides reach the traced program, also after a first trace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.norms import policy

RNG = np.random.default_rng(31)


def _x(shape=(16, 4, 4, 8)):
  return jnp.asarray(RNG.standard_normal(shape).astype(np.float32) + 3.0)


class _Traced:
  """A jitted function that counts its traces and keeps the jaxpr text of the last one."""

  def __init__(self, fn):
    self.traces = 0
    self.fn = fn
    self.jitted = jax.jit(self._run)

  def _run(self, *args):
    self.traces += 1
    return self.fn(*args)

  def __call__(self, *args):
    return self.jitted(*args)


def _text(fn, *args):
  return str(jax.make_jaxpr(fn)(*args))


def test_defaults_per_backend():
  cpu, gpu, tpu = (policy.default_policy(b) for b in ("cpu", "gpu", "tpu"))
  assert (cpu.variance, cpu.rms_overflow_guard, cpu.fusion_barrier) == ("checked", "cond", True)
  assert (gpu.variance, gpu.rms_overflow_guard, gpu.fusion_barrier) == ("shifted", "select", False)
  assert (tpu.variance, tpu.fusion_barrier, tpu.one_pass_forward) == ("shifted", True, False)
  assert policy.default_policy() == policy.default_policy(jax.default_backend())


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares with CPU defaults")
def test_an_override_after_a_first_trace_at_the_same_shape_retraces():
  x = _x()
  f = _Traced(lambda x: normzoo.batch_norm(x)[0])
  y_default = f(x)
  f(x)
  assert f.traces == 1
  assert " cond[" in _text(f.fn, x)  # the checked single pass
  with normzoo.backend_policy(variance="two_pass") as active:
    assert active.variance == "two_pass"
    y_override = f(x)
    assert f.traces == 2  # same function, same shape: traced again
    assert " cond[" not in _text(f.fn, x)
  f(x)
  assert f.traces == 2  # back to the default: its trace is reused
  np.testing.assert_allclose(y_override, y_default, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("field,value,absent", [
    ("rms_overflow_guard", "select", " cond["),
    ("rms_fusion_barrier", False, "optimization_barrier"),
])
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares with CPU defaults")
def test_rms_choices_follow_the_policy(field, value, absent):
  x, ct = _x((4, 8)), _x((4, 8))
  pull = lambda x, ct: jax.vjp(lambda x: normzoo.rms_norm(x), x)[1](ct)
  assert absent in _text(pull, x, ct)
  with normzoo.backend_policy(**{field: value}):
    assert absent not in _text(pull, x, ct)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="compares with CPU defaults")
def test_a_pullback_keeps_the_policy_of_its_forward():
  """The backward is traced when the pullback is called: it must not read the policy then."""
  x, ct = _x(), _x()
  with normzoo.backend_policy(fusion_barrier=False):
    _, pull = jax.vjp(lambda x: normzoo.batch_norm(x)[0], x)
  assert "optimization_barrier" not in _text(pull, ct)
  _, pull = jax.vjp(lambda x: normzoo.batch_norm(x)[0], x)
  with normzoo.backend_policy(fusion_barrier=False):
    assert "optimization_barrier" in _text(pull, ct)


def test_group_sum_override_changes_the_program_not_the_result():
  x = _x((4, 3, 3, 16))
  f = _Traced(lambda x: normzoo.group_norm(x, num_groups=4))
  results = {}
  for method in ("reshape", "block_matmul", "grouped_matmul"):
    with normzoo.backend_policy(group_sum=method):
      results[method] = f(x)
      has_product = "dot_general" in _text(f.fn, x)
    assert has_product == (method != "reshape"), method
  assert f.traces == 3
  for method in ("block_matmul", "grouped_matmul"):
    np.testing.assert_allclose(results[method], results["reshape"], rtol=1e-5, atol=1e-5)


def test_overrides_nest_and_are_validated():
  with normzoo.backend_policy(variance="two_pass"):
    with normzoo.backend_policy(fusion_barrier=False) as inner:
      assert (inner.variance, inner.fusion_barrier) == ("two_pass", False)
      assert normzoo.current_policy() == inner
    assert normzoo.current_policy().fusion_barrier == policy.default_policy().fusion_barrier
  assert normzoo.current_policy() == policy.default_policy()
  with pytest.raises(ValueError, match=r"unknown backend policy field\(s\) \['varaince'\]"):
    with normzoo.backend_policy(varaince="two_pass"):
      pass
  with pytest.raises(ValueError, match="rms_overflow_guard='while'.*'cond', 'select'"):
    with normzoo.backend_policy(rms_overflow_guard="while"):
      pass


def test_evonorm_s0_pullback_keeps_the_group_sum_of_its_forward():
  x = _x((4, 3, 3, 16))
  f = lambda x: normzoo.evonorm_s0(x, None, None, jnp.ones(16), num_groups=4)
  with normzoo.backend_policy(group_sum="reshape"):
    _, pull = jax.vjp(f, x)
  assert "dot_general" not in _text(pull, x)
  _, pull = jax.vjp(f, x)
  with normzoo.backend_policy(group_sum="reshape"):
    assert ("dot_general" in _text(pull, x)) == (jax.default_backend() == "cpu")
