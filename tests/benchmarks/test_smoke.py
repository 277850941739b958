"""The benchmark scripts run end to end on tiny shapes (no timing assertions)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


def _run(module, *args):
  return _python("-m", module, *args)


def test_norms_benchmark(tmp_path):
  path = tmp_path / "norms.json"
  stdout = _run("benchmarks.norms", "--norms=batch,rms,frn", "--shapes=8x4x4x32",
                "--dtypes=float32", "--modes=fwd+bwd,vjp", "--repeats=1", f"--json={path}")
  rows = json.loads(path.read_text())["rows"]
  assert {(r["norm"], r["train"], r["mode"]) for r in rows} == {
      (norm, train, mode) for mode in ("fwd+bwd", "vjp")
      for norm, train in (("batch", True), ("batch", False), ("rms", True),
                          ("frn (vs flax BatchNorm)", True))}
  assert all(r["normzoo_ms"] > 0 and r["flax_ms"] > 0 for r in rows)
  assert "normzoo/flax" in stdout


def test_train_step_benchmark(tmp_path):
  path = tmp_path / "step.json"
  _run("benchmarks.train_step", "--models=mnist_cnn_small", "--norms=batch", "--batch_size=8",
       "--rounds=1", "--steps=1", f"--json={path}")
  result = json.loads(path.read_text())
  (row,) = result["rows"]
  assert row["normzoo_images_per_s"] > 0 and row["flax_images_per_s"] > 0
  assert row["ceiling"] == row["none_images_per_s"] / row["flax_images_per_s"]
  assert result["machine"]["host_allocator"] in ("tuned", "default")


def test_profile_step_benchmark():
  stdout = _run("benchmarks.profile_step", "--model=mnist_cnn_small", "--norm=batch",
                "--batch_size=8", "--rounds=2", "--steps=2", "--top=3")
  rows = [l.split("|")[1:-1] for l in stdout.splitlines() if l.startswith("| ")][1:]
  assert [r[0].strip() for r in rows] == ["normzoo", "flax.linen", "no norm"]
  for r in rows:
    conv, other, total = (float(v) for v in r[1:4])
    # The model's convolution and dense layers are found in the trace.
    assert conv > 0 and other > 0 and abs(conv + other - total) < 0.11


def test_profile_step_classifies_ops_by_what_they_compute():
  import jax
  import jax.numpy as jnp

  from benchmarks import profile_step

  def f(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.tanh(y) * 3.0, axis=(1, 2)), jnp.max(x)

  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  kinds = profile_step._op_kinds(jax.jit(f).lower(x, w).compile().as_text())  # pylint: disable=protected-access
  assert "conv/dot" in kinds.values() and "other" in kinds.values()


def test_benchmarks_name_the_flag_of_an_unknown_model_norm_or_mode():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cases = [
      ("benchmarks.train_step", ["--models=mnist_cnn,resnet99", "--rounds=1"], "--models"),
      ("benchmarks.train_step", ["--models=mnist_cnn_small", "--norms=batch,bacth"], "--norms"),
      ("benchmarks.profile_step", ["--model=resnet99"], "--model"),
      ("benchmarks.profile_step", ["--norm=frn"], "--norm"),
      ("benchmarks.norms", ["--modes=fwd,bwd"], "--modes")]
  # Started together: each spends seconds importing JAX before it fails.
  procs = [(module, args, flag, subprocess.Popen(
      [sys.executable, "-m", module, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)) for module, args, flag in cases]
  for module, args, flag, proc in procs:
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0, (module, args)
    assert flag + ":" in stderr and "Traceback" not in stderr, stderr[-2000:]


def test_norms_benchmark_peak_column_and_pallas_skip_on_cpu(tmp_path):
  path = tmp_path / "norms.json"
  stdout = _run("benchmarks.norms", "--norms=layer,layer_pallas", "--shapes=4x8x16",
                "--dtypes=float32", "--modes=fwd", "--repeats=1", "--calls_per_sample=2",
                "--peak_gbps=100", "--notorch", f"--json={path}")
  assert "skipping layer_pallas: the Pallas kernels need a GPU" in stdout
  (row,) = json.loads(path.read_text())["rows"]
  assert row["norm"] == "layer" and "% of peak" in stdout
  assert abs(row["pct_peak"] - row["normzoo_gbps"]) < 1e-9  # 100 * GB/s / 100 GB/s


_PALLAS_CASES = """
import functools, json
from benchmarks import norms
from normzoo.norms import pallas_rows
for name in ("pallas_layer_norm", "pallas_rms_norm"):
  setattr(pallas_rows, name, functools.partial(getattr(pallas_rows, name), interpret=True))
rows = [norms.run_case(n, (4, 8, 16), "float32", "vjp", True, 1, False, calls=2)
        for n in ("layer_pallas", "rms_pallas")]
rows.append(norms.run_case("layer_pallas", (2, 4, 4, 16), "float32", "fwd", True, 1, False))
print(json.dumps(rows))
"""


def test_norms_benchmark_times_the_pallas_modules():
  # What the benchmark runs on a GPU, here through the Pallas interpreter
  # (in a subprocess: benchmarks.norms and train_step define the same flags).
  *rows, conv_layout = json.loads(_python("-c", _PALLAS_CASES).splitlines()[-1])
  assert [r["norm"] for r in rows] == ["layer_pallas", "rms_pallas"]
  assert all(r["normzoo_ms"] > 0 and r["flax_ms"] > 0 for r in rows)
  assert conv_layout is None  # layer norm over (H, W, C): not the kernel's layout
