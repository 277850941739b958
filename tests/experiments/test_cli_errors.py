"""Command-line mistakes end as one line on stderr and exit status 1.

Each case runs the real CLI in a subprocess (as a user types it) and checks
that stderr is exactly one line naming the field, with no traceback and no
backend-probe INFO line before it. Nothing is trained: every case fails
before the run starts.
"""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

CASES = [
    # (module, extra args, substrings the one line must contain)
    ("experiments.main", ["--config.nrom=group"], ["--config.nrom", "norm"]),
    ("experiments.main", ["--config.norm_kwargs.num_groups=16"],
     ["--config.norm_kwargs.num_groups", "--config.norm_kwargs='{\"num_groups\""]),
    ("experiments.main", ["--config.per_norm_kwargs.gruop.num_groups=4"],
     ["gruop", "group"]),
    ("experiments.main", ["--config.norm=nope"], ["unknown norm 'nope'", "group"]),
    ("experiments.main", ["--bogus_flag=1"], ["--bogus_flag"]),
    ("experiments.compare", ["--config.lerning_rate=0.1"], ["learning_rate"]),
]


def _run(module: str, args: list[str], tmp_path) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)


@pytest.mark.parametrize("module,extra,expected", CASES, ids=lambda v: str(v)[:40])
def test_bad_flag_is_one_line_and_exit_1(module, extra, expected, tmp_path):
  args = ["--config=configs/synthetic.py", f"--workdir={tmp_path / 'run'}", *extra]
  proc = _run(module, args, tmp_path)
  assert proc.returncode == 1, proc.stderr
  lines = proc.stderr.splitlines()
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: ")
  for text in expected:
    assert text in lines[0]


def test_missing_config_file_names_the_closest(tmp_path):
  proc = _run("experiments.main", ["--config=configs/fashion_mnst.py",
                                   f"--workdir={tmp_path}"], tmp_path)
  assert proc.returncode == 1
  assert proc.stderr.splitlines() == [
      "error: --config=configs/fashion_mnst.py: no such config file; closest: "
      + proc.stderr.split("closest: ", 1)[1].strip()]
  assert "configs/fashion_mnist.py" in proc.stderr
  assert not (tmp_path / "config.json").exists()


def test_config_help_lists_every_default_field(tmp_path):
  proc = _run("experiments.main", ["--config_help"], tmp_path)
  assert proc.returncode == 0, proc.stderr
  # Oracle: the fields of configs/default.py's own get_config().
  sys.path.insert(0, str(ROOT))
  try:
    from normzoo.configs import default
  finally:
    sys.path.pop(0)
  for field in default.get_config().keys():
    assert f"  {field} = " in proc.stdout, field
