"""BatchNorm(unbiased_running_var=True) reproduces torch.nn.BatchNorm step by step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo

torch = pytest.importorskip("torch", reason="PyTorch parity needs the 'test' extra (torch==2.13.0)")


def _steps(torch_bn, channels_axis, shapes, seed=0):
  """Trains both layers on the same batches; compares every step, then evaluation."""
  rng = np.random.default_rng(seed)
  ours = normzoo.BatchNorm(momentum=0.9, epsilon=1e-5, axis=channels_axis,
                           unbiased_running_var=True)
  c = torch_bn.num_features
  with torch.no_grad():
    torch_bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)))
    torch_bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.5, c).astype(np.float32)))
  params = {"scale": jnp.asarray(torch_bn.weight.detach().numpy()),
            "bias": jnp.asarray(torch_bn.bias.detach().numpy())}
  stats = ours.init(jax.random.PRNGKey(0), jnp.ones(shapes[0]), use_running_average=True)[
      "batch_stats"]

  def loss(params, stats, x, w):
    y, upd = ours.apply({"params": params, "batch_stats": stats}, x, use_running_average=False,
                        mutable=["batch_stats"])
    return jnp.sum(y * w), (y, upd["batch_stats"])

  grad_fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 2), has_aux=True))
  torch_bn.train()
  for step, shape in enumerate(shapes):
    x = (rng.normal(size=shape) * (1 + step) + step).astype(np.float32)
    w = rng.normal(size=shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = torch_bn(xt)
    (yt * torch.from_numpy(w)).sum().backward()
    (_, (y, stats)), (gp, gx) = grad_fn(params, stats, jnp.asarray(x), jnp.asarray(w))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=3e-5, rtol=1e-5)
    np.testing.assert_allclose(stats["mean"], torch_bn.running_mean.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(stats["var"], torch_bn.running_var.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(gp["scale"], torch_bn.weight.grad.numpy(), atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(gp["bias"], torch_bn.bias.grad.numpy(), atol=1e-3, rtol=1e-4)
    torch_bn.zero_grad()

  torch_bn.eval()
  x = rng.normal(size=shapes[-1]).astype(np.float32) * 3
  y = ours.apply({"params": params, "batch_stats": stats}, jnp.asarray(x), use_running_average=True)
  np.testing.assert_allclose(y, torch_bn(torch.from_numpy(x)).detach().numpy(), atol=3e-5,
                             rtol=1e-5)


def test_batchnorm2d_nchw():
  _steps(torch.nn.BatchNorm2d(6, momentum=0.1, eps=1e-5), 1,
         [(8, 6, 5, 5), (4, 6, 5, 5), (8, 6, 3, 7), (2, 6, 5, 5)])


def test_batchnorm1d():
  _steps(torch.nn.BatchNorm1d(5, momentum=0.1, eps=1e-5), 1, [(16, 5), (7, 5), (3, 5), (16, 5)])
  _steps(torch.nn.BatchNorm1d(5, momentum=0.1, eps=1e-5), 1, [(4, 5, 9), (2, 5, 3)], seed=1)


def test_batchnorm3d():
  _steps(torch.nn.BatchNorm3d(3, momentum=0.1, eps=1e-5), 1, [(2, 3, 4, 4, 4), (3, 3, 2, 4, 4)])
