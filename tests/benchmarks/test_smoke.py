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
                "--dtypes=float32", "--modes=fwd+bwd", "--repeats=1", f"--json={path}")
  rows = json.loads(path.read_text())["rows"]
  assert {(r["norm"], r["train"]) for r in rows} == {
      ("batch", True), ("batch", False), ("rms", True), ("frn (vs flax BatchNorm)", True)}
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
