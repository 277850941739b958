"""``--launcher=ray`` without a running cluster: one line on stderr, exit 1."""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("ray", reason="Ray is part of the 'test' extra")

SWEEP = textwrap.dedent("""
    from configs import synthetic
    from normzoo.sweeps import grid

    def get_config():
      return synthetic.get_config()

    def get_sweep():
      return grid(seed=[0])
""")


def test_sweep_with_no_ray_cluster_says_how_to_start_one(tmp_path):
  sweep = tmp_path / "sweep.py"
  sweep.write_text(SWEEP)
  env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
  # Ray looks for a running cluster's address file under its temp dir: an empty one here.
  env.update(RAY_TMPDIR=str(tmp_path), TMPDIR=str(tmp_path), JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.sweep", f"--sweep={sweep}",
       f"--workdir={tmp_path / 'w'}", "--launcher=ray"],
      capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 1, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1, proc.stderr
  assert "Traceback" not in proc.stderr
  assert "ray start --head" in errors[0] and "--ray_address=local" in errors[0]
