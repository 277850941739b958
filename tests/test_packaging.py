"""normzoo as ``pip install`` leaves it: the wheel, its console scripts and shipped configs.

The wheel is built offline from a copy of the repository and installed with
``--no-deps`` into a fresh virtual environment that borrows this one's
dependencies (a ``.pth`` line; this environment's own normzoo, an editable
install, is not visible there), then its commands run from an unrelated
directory.
"""

import glob
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile

import pytest

import normzoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def test_every_package_directory_is_listed():
  # The package list is explicit (configs/ installs as normzoo.configs), so a
  # new subpackage must be added to it or the wheel would silently lack it.
  found = set()
  for init in glob.glob(os.path.join(REPO, "normzoo", "**", "__init__.py"), recursive=True):
    found.add(os.path.relpath(os.path.dirname(init), REPO).replace(os.sep, "."))
  for init in glob.glob(os.path.join(REPO, "configs", "**", "__init__.py"), recursive=True):
    rel = os.path.relpath(os.path.dirname(init), REPO).replace(os.sep, ".")
    found.add("normzoo." + rel)
  assert set(_pyproject()["tool"]["setuptools"]["packages"]) == found


def test_version_is_written_once():
  project = _pyproject()["project"]
  assert "version" not in project and "version" in project["dynamic"]
  assert importlib.metadata.version("normzoo") == normzoo.__version__


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  src = tmp_path_factory.mktemp("src")
  top_level = {".venv", ".git", "runs", "sweeps", "build", "dist", "reports", "benchmarks"}

  def ignore(directory, names):
    skip = top_level if os.path.samefile(directory, REPO) else set()
    return [n for n in names if n in skip or n in ("__pycache__", ".pytest_cache")
            or n.endswith(".egg-info")]

  shutil.copytree(REPO, src, dirs_exist_ok=True, ignore=ignore)
  out = tmp_path_factory.mktemp("dist")
  proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                         "--no-build-isolation", "-q", "-w", str(out), str(src)],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  (path,) = glob.glob(str(out / "normzoo-*.whl"))
  return path


def test_wheel_holds_configs_and_type_marker(wheel):
  names = set(zipfile.ZipFile(wheel).namelist())
  assert "normzoo/py.typed" in names
  for path in glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True):
    assert "normzoo/" + os.path.relpath(path, REPO).replace(os.sep, "/") in names
  assert not any(n.startswith(("configs/", "experiments/", "tests/")) for n in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
  venv = tmp_path_factory.mktemp("venv")
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
  python = str(venv / "bin" / "python")
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        capture_output=True, text=True, check=True).stdout.strip()
  with open(os.path.join(site, "borrowed_dependencies.pth"), "w") as f:
    f.write(sysconfig.get_path("purelib") + "\n")  # a path line: its .pth files do not run
  proc = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                         "--disable-pip-version-check", wheel],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  return venv


def _command(venv, name, *args, cwd):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONPATH="")
  return subprocess.run([str(venv / "bin" / name), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def test_installed_commands_run_from_any_directory(installed, tmp_path):
  where = _command(installed, "python", "-c", "import normzoo; print(normzoo.__file__)",
                   cwd=tmp_path)
  assert where.stdout.startswith(str(installed)), where  # the wheel, not the clone

  run_dir = tmp_path / "run"
  train = _command(installed, "normzoo-train", "--config=normzoo:synthetic",
                   f"--workdir={run_dir}", "--config.num_epochs=1", cwd=tmp_path)
  assert train.returncode == 0, train.stderr
  assert (run_dir / "result.json").is_file()

  report = _command(installed, "normzoo-report", f"--workdir={run_dir}", cwd=tmp_path)
  assert report.returncode == 0, report.stderr
  assert (run_dir / "report.md").is_file()

  fields = _command(installed, "normzoo-train", "--config_help", cwd=tmp_path)
  assert fields.returncode == 0 and "norm = " in fields.stdout, fields

  bad = _command(installed, "normzoo-sweep", "--sweep=normzoo:nope", "--workdir=x",
                 cwd=tmp_path)
  assert bad.returncode == 1 and bad.stderr.startswith("error: --sweep=normzoo:nope"), bad


def test_installed_sweep_of_a_users_own_file(installed, tmp_path):
  # A sweep file outside any clone, starting from a shipped config; its
  # worker subprocess must find normzoo (and normzoo.configs) installed.
  sweep = tmp_path / "my_sweep.py"
  sweep.write_text(textwrap.dedent("""
      from normzoo.configs import synthetic
      from normzoo.sweeps import grid

      def get_config():
        c = synthetic.get_config()
        c.num_epochs = 1
        c.train_examples = 128
        c.test_examples = 64
        return c

      def get_sweep():
        return grid(norm=["layer"], seed=[0])
      """))
  proc = _command(installed, "normzoo-sweep", f"--sweep={sweep}", "--workdir=out",
                  cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "finished: 1 runs, 0 failed" in proc.stdout
