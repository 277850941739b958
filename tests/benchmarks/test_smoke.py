"""The benchmark scripts run end to end on tiny shapes (no timing assertions)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


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
  for module, args, flag in [
      ("benchmarks.train_step", ["--models=mnist_cnn,resnet99", "--rounds=1"], "--models"),
      ("benchmarks.train_step", ["--models=mnist_cnn_small", "--norms=batch,bacth"], "--norms"),
      ("benchmarks.profile_step", ["--model=resnet99"], "--model"),
      ("benchmarks.profile_step", ["--norm=frn"], "--norm"),
      ("benchmarks.norms", ["--modes=fwd,bwd"], "--modes")]:
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0, (module, args)
    assert flag + ":" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
