"""The device's achievable memory bandwidth: the ceiling for a normalizer's GB/s.

    python -m benchmarks.bandwidth --size_mib=1024

Times, on one array of ``--size_mib``: a jitted ``2 * x`` (one read and one
write, as a normalizer's forward at best), ``sum(x)`` (one read), and with
PyTorch on the same device ``x.mul(2)``, in float32 and bf16. A normalizer's
'% of peak' in ``benchmarks.norms`` is against the datasheet figure; this
says how much of it a plain elementwise kernel reaches on the same machine.
"""

from __future__ import annotations

# First: it sets OMP_WAIT_POLICY before anything can load PyTorch's OpenMP runtime.
from benchmarks.machine import setup_host, write_results  # isort: skip

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks.machine import peak_gbps
from benchmarks.timing import calls_per_sample, time_interleaved

FLAGS = flags.FLAGS
flags.DEFINE_integer("size_mib", 1024, "Array size in MiB (per dtype).", lower_bound=1)
flags.DEFINE_integer("repeats", 15, "Timed repetitions (median reported).", lower_bound=1)
flags.DEFINE_bool("torch", True, "Include PyTorch on the same device when it has one.")
flags.DEFINE_string("json", "benchmarks/out/bandwidth.json", "Where to write results ('' = "
                    "don't).")


def _torch_case(dtype: str, n: int):
  try:
    import torch
  except ImportError:
    return None
  gpu = jax.default_backend() == "gpu"
  if gpu and not torch.cuda.is_available():
    return None
  device = "cuda" if gpu else "cpu"
  x = torch.ones(n, dtype=getattr(torch, dtype), device=device)
  return lambda: x.mul(2)


def main(argv):
  del argv
  setup_host()
  calls = calls_per_sample()
  peak = peak_gbps()
  rows = []
  for dtype in ("float32", "bfloat16"):
    n = FLAGS.size_mib * 2**20 // jnp.dtype(dtype).itemsize
    x = jnp.ones((n,), dtype)
    nbytes = x.nbytes
    cases = {"jax 2*x": (jax.jit(lambda x: 2 * x), 2 * nbytes),
             "jax sum(x)": (jax.jit(lambda x: jnp.sum(x, dtype=jnp.float32)), nbytes)}
    times = time_interleaved({k: (lambda f=f: f(x)) for k, (f, _) in cases.items()},
                             FLAGS.repeats, calls=calls)
    torch_fn = _torch_case(dtype, n) if FLAGS.torch else None
    if torch_fn is not None:
      cases["torch x.mul(2)"] = (None, 2 * nbytes)
      times.update(time_interleaved({"torch x.mul(2)": torch_fn}, FLAGS.repeats, calls=calls))
    for name, seconds in times.items():
      gbps = cases[name][1] / seconds / 1e9
      rows.append(dict(op=name, dtype=dtype, mib=FLAGS.size_mib, ms=seconds * 1e3, gbps=gbps,
                       **({"pct_peak": 100 * gbps / peak} if peak else {})))
    del x
  print("| op | dtype | MiB | ms | GB/s |" + (" % of datasheet peak |" if peak else ""))
  print("|---|---|---|---|---|" + ("---|" if peak else ""))
  for r in rows:
    print(f"| {r['op']} | {r['dtype']} | {r['mib']} | {r['ms']:.3f} | {r['gbps']:.0f} |"
          + (f" {r['pct_peak']:.0f} |" if peak else ""))
  write_results(FLAGS.json, rows, peak_gbps=peak)


if __name__ == "__main__":
  app.run(main)
