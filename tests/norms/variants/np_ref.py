"""float64 NumPy references for the research variants, written from the papers' formulas.

Nothing here imports normzoo. Inputs are channels-last (N, ..., C).
"""

from __future__ import annotations

import numpy as np


def f64(a):
  return None if a is None else np.asarray(a, np.float64)


def spatial(x):
  return tuple(range(1, x.ndim - 1))


def batch_axes(x):
  return tuple(range(x.ndim - 1))


def renorm_train(x, scale, bias, mean, var, r_max, d_max, eps, momentum):
  x = f64(x)
  mu_b = x.mean(batch_axes(x))
  var_b = x.var(batch_axes(x))
  sigma_b, sigma = np.sqrt(var_b + eps), np.sqrt(f64(var) + eps)
  r = np.clip(sigma_b / sigma, 1 / r_max, r_max)
  d = np.clip((mu_b - f64(mean)) / sigma, -d_max, d_max)
  y = ((x - mu_b) / sigma_b * r + d) * f64(scale) + f64(bias)
  new_mean = momentum * f64(mean) + (1 - momentum) * mu_b
  return y, new_mean, momentum * f64(var) + (1 - momentum) * var_b


def ghost_train(x, scale, bias, v, eps):
  """Returns y and the per-virtual-batch means and variances, (G, C) each."""
  x = f64(x)
  ys, means, variances = [], [], []
  for g in range(x.shape[0] // v):
    xg = x[g * v:(g + 1) * v]
    m, s2 = xg.mean(batch_axes(xg)), xg.var(batch_axes(xg))
    ys.append((xg - m) / np.sqrt(s2 + eps) * f64(scale) + f64(bias))
    means.append(m)
    variances.append(s2)
  return np.concatenate(ys), np.stack(means), np.stack(variances)


def frn(x, scale, bias, tau, eps):
  x = f64(x)
  nu2 = (x ** 2).mean(spatial(x), keepdims=True)
  y = f64(scale) * x / np.sqrt(nu2 + eps) + f64(bias)
  return y if tau is None else np.maximum(y, f64(tau))


def evonorm_b0(x, scale, bias, v1, eps, batch_var=None):
  x = f64(x)
  if batch_var is None:
    batch_var = x.var(batch_axes(x))
  inst_var = x.var(spatial(x), keepdims=True)
  den = np.maximum(np.sqrt(f64(batch_var) + eps), f64(v1) * x + np.sqrt(inst_var + eps))
  return x / den * f64(scale) + f64(bias)


def group_var(x, groups):
  x = f64(x)
  n, *sp, c = x.shape
  xg = x.reshape(n, *sp, groups, c // groups)
  axes = tuple(range(1, xg.ndim - 2)) + (xg.ndim - 1,)
  var = xg.var(axes, keepdims=True)
  return np.broadcast_to(var, xg.shape).reshape(x.shape)


def evonorm_s0(x, scale, bias, v1, groups, eps):
  x = f64(x)
  sig = 1 / (1 + np.exp(-f64(v1) * x))
  return x * sig / np.sqrt(group_var(x, groups) + eps) * f64(scale) + f64(bias)


def softmax(w):
  e = np.exp(f64(w) - np.max(w))
  return e / e.sum()


def switchable(x, scale, bias, mean_w, var_w, eps, bn_mean=None, bn_var=None):
  x = f64(x)
  mu_in, var_in = x.mean(spatial(x), keepdims=True), x.var(spatial(x), keepdims=True)
  ln_axes = tuple(range(1, x.ndim))
  mu_ln, var_ln = x.mean(ln_axes, keepdims=True), x.var(ln_axes, keepdims=True)
  if bn_mean is None:
    bn_mean, bn_var = x.mean(batch_axes(x)), x.var(batch_axes(x))
  wm, wv = softmax(mean_w), softmax(var_w)
  mu = wm[0] * mu_in + wm[1] * mu_ln + wm[2] * f64(bn_mean)
  s2 = wv[0] * var_in + wv[1] * var_ln + wv[2] * f64(bn_var)
  return (x - mu) / np.sqrt(s2 + eps) * f64(scale) + f64(bias), bn_mean, bn_var
