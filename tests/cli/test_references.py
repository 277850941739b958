"""``normzoo:NAME`` references to the shipped configs and sweeps."""

import glob
import os

import pytest

from normzoo.cli import references

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _repo_config_names():
  names = set()
  for sub in ("", "sweeps/"):
    for path in glob.glob(os.path.join(REPO, "configs", sub, "*.py")):
      name = os.path.basename(path)[:-3]
      if not name.startswith("_") and name != "common":
        names.add(sub + name)
  return names


def test_every_repository_config_is_reachable_by_name():
  shipped = references.packaged()
  assert set(shipped) == _repo_config_names()
  for name, path in shipped.items():
    assert os.path.samefile(path, os.path.join(REPO, "configs", name + ".py"))


def test_resolve_config_and_sweep():
  assert os.path.samefile(references.resolve("normzoo:fashion_mnist"),
                          os.path.join(REPO, "configs", "fashion_mnist.py"))
  assert os.path.samefile(references.resolve("normzoo:mnist.py"),
                          os.path.join(REPO, "configs", "mnist.py"))
  for value in ("normzoo:batch_size", "normzoo:sweeps/batch_size"):
    assert os.path.samefile(references.resolve(value, "sweep"),
                            os.path.join(REPO, "configs", "sweeps", "batch_size.py"))
  assert references.resolve("configs/mnist.py") == "configs/mnist.py"  # a path stays a path


@pytest.mark.parametrize("value,flag,names", [
    ("normzoo:fashion_mnst", "config", ["'fashion_mnst'", "normzoo:fashion_mnist"]),
    ("normzoo:steps", "sweep", ["'steps'", "normzoo:steps_to_target"]),
])
def test_unknown_name_lists_the_valid_ones(value, flag, names):
  with pytest.raises(ValueError, match=f"--{flag}={value}") as info:
    references.resolve(value, flag)
  for name in names:
    assert name in str(info.value)
  if flag == "config":  # configs and sweeps are listed apart
    assert "steps_to_target" not in str(info.value)


def test_resolve_argv_rewrites_both_flag_forms_only():
  argv = ["prog", "--config=normzoo:mnist", "--sweep", "normzoo:regularizer",
          "--workdir=normzoo:mnist", "--config.norm=group"]
  out = references.resolve_argv(argv)
  assert os.path.samefile(out[1].split("=", 1)[1], os.path.join(REPO, "configs", "mnist.py"))
  assert os.path.samefile(out[3], os.path.join(REPO, "configs", "sweeps", "regularizer.py"))
  assert out[0] == "prog" and out[2] == "--sweep" and out[4:] == argv[4:]
