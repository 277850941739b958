"""Experiment: forms of the batch-statistics path on GPU, each against flax.linen, one process."""
import contextlib, json, os, sys
from benchmarks.machine import setup_host  # noqa
import jax, jax.numpy as jnp, numpy as np
from benchmarks import norms as nb
from benchmarks.timing import time_interleaved
from normzoo.norms import normalize, stats

small = os.environ.get("SMALL") == "1"
calls = 1 if small else 20
repeats = 3 if small else 15

def patch(name):
  if name == "cur":
    return contextlib.nullcontext()
  stack = contextlib.ExitStack()
  def setp(mod, attr, val):
    old = getattr(mod, attr); setattr(mod, attr, val)
    stack.callback(setattr, mod, attr, old)
  if name == "nobar":
    setp(normalize, "_barrier", lambda t: t)
  elif name == "auto":
    setp(normalize, "_normalize_with_batch_stats",
         lambda x, s, b, m, spec: normalize._forward(x, s, b, m, spec)[0])
  elif name == "two_pass":
    setp(stats, "variance_method", lambda use_fast_variance=True: "two_pass")
  elif name == "auto_nobar":
    setp(normalize, "_normalize_with_batch_stats",
         lambda x, s, b, m, spec: normalize._forward(x, s, b, m, spec)[0])
    setp(normalize, "_barrier", lambda t: t)
  return stack

BWD = ["cur", "nobar", "auto"]
FWD = ["cur", "two_pass"]
cases = [
  ("batch", (128, 56, 56, 256), "float32", "fwd", FWD),
  ("batch", (128, 56, 56, 256), "float32", "vjp", BWD),
  ("batch", (128, 56, 56, 256), "bfloat16", "vjp", BWD),
  ("group", (128, 56, 56, 256), "float32", "vjp", BWD),
  ("batch", (128, 32, 32, 64), "float32", "vjp", BWD),
  ("batch", (128, 32, 32, 64), "float32", "fwd+bwd", BWD),
  ("layer", (64, 2048, 1024), "float32", "vjp", BWD),
  ("layer", (64, 2048, 1024), "bfloat16", "vjp", BWD),
  ("layer", (32, 56, 56, 256), "bfloat16", "fwd+bwd", BWD),
  ("group", (32, 56, 56, 256), "bfloat16", "fwd", FWD),
  ("group", (32, 56, 56, 256), "bfloat16", "vjp", BWD),
  ("instance", (256, 32, 32, 512), "float32", "fwd", FWD),
  ("instance", (256, 32, 32, 512), "float32", "vjp", BWD),
]
if small:
  cases = [(n, tuple(max(1, d // 8) if i < len(s) - 1 else d for i, d in enumerate(s)), dt, m, v)
           for n, s, dt, m, v in cases]
out = []
for name, shape, dtype, mode, variants in cases:
  try:
    ours, theirs, kwargs = nb._modules(name, len(shape))
    x = jnp.asarray(nb._input(shape), dtype)
    fns = {}
    for v in variants:
      with patch(v):
        f = nb._jax_fn(ours, kwargs, x, mode, True)
        jax.block_until_ready(f(x))
      fns[v] = (lambda f=f: f(x))
    f_flax = nb._jax_fn(theirs, kwargs, x, mode, True)
    fns["flax"] = lambda: f_flax(x)
    t = time_interleaved(fns, repeats, calls=calls)
    row = dict(norm=name, shape="x".join(map(str, shape)), dtype=dtype, mode=mode,
               **{f"{k}_ms": v * 1e3 for k, v in t.items()})
    print(f"| {name} | {row['shape']} | {dtype} | {mode} | flax {t['flax']*1e3:.3f} | "
          + " | ".join(f"{v} {t[v]*1e3:.3f} ({t[v]/t['flax']:.2f})" for v in variants) + " |",
          flush=True)
    out.append(row)
  except Exception as e:
    print("FAILED", name, shape, dtype, mode, type(e).__name__, e, flush=True)
path = os.path.join(os.environ.get("OUT", "/tmp"), "variants.json")
json.dump(out, open(path, "w"), indent=1)
