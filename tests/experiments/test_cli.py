"""experiments.main / experiments.compare as a user runs them (subprocesses)."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args, timeout=120):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("module,override,message", [
    ("experiments.main", "--config.norm=bogus", "error: unknown norm 'bogus'"),
    ("experiments.main", "--config.batch_size=0", "error: invalid config: batch_size"),
    ("experiments.compare", "--norms=batch,bogus", "error: unknown norm 'bogus'"),
])
def test_bad_config_exits_with_one_line(tmp_path, module, override, message):
  proc = _run(module, "--config=configs/synthetic.py", f"--workdir={tmp_path}", override)
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and errors[0].startswith(message), proc.stderr


def test_missing_data_exits_with_one_line(tmp_path):
  proc = _run("experiments.main", "--config=configs/mnist.py", f"--workdir={tmp_path}",
              f"--config.data_dir={tmp_path}/nowhere")
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "mnist" in errors[0] and "nowhere" in errors[0], proc.stderr


def test_norm_kwargs_dict_override_from_the_command_line(tmp_path):
  # A locked config refuses new keys one by one; the whole dict can be passed.
  proc = _run("experiments.main", "--config=configs/synthetic.py", f"--workdir={tmp_path}",
              "--config.norm=group", """--config.norm_kwargs={"num_groups": 3}""")
  assert proc.returncode == 1
  # The override reached the norm: 3 groups do not divide the model's 8 channels.
  assert proc.stderr.splitlines()[-1].startswith("error: num_groups=3 does not divide"), \
      proc.stderr
