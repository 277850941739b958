"""tune_host_allocator: large buffers stop being page-faulted in on every malloc/free cycle.

Measured in fresh subprocesses (the settings are process-wide and one-way),
by counting minor page faults of plain malloc/free cycles, not by timing:
jitted XLA:CPU calls fault the same way (benchmarks/RESULTS.md), but how
many of their buffers are live at once depends on thread scheduling, which
makes a count taken through XLA vary with the machine's load.
"""

import json
import os
import subprocess
import sys

import pytest

from normzoo.train import host_memory, train_and_evaluate
from tests.train.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = r"""
import ctypes, json, resource, sys
from normzoo.train import host_memory

state_before = host_memory.host_allocator_state()
applied = again = None
if sys.argv[1] == "tune":
  applied = host_memory.tune_host_allocator()
  again = host_memory.tune_host_allocator()

# What XLA:CPU does with each call's output buffer, without XLA's threads:
# malloc 32 MiB (above glibc's default mmap threshold), write it, free it.
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size = 32 << 20

def cycle():
  p = libc.malloc(size)
  libc.memset(p, 1, size)
  libc.free(p)

for _ in range(2):
  cycle()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
  cycle()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 10
print(json.dumps(dict(faults=faults, applied=applied, again=again, state_before=state_before,
                      state_after=host_memory.host_allocator_state())))
"""


def _run(mode):
  env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
  env["JAX_PLATFORMS"] = "cpu"
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], cwd=REPO, env=env, check=True,
                       capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(host_memory._glibc() is None, reason="needs glibc (Linux)")
def test_tuning_removes_per_cycle_page_faults_of_large_buffers():
  default, tuned = _run("default"), _run("tune")
  expected = {name: value for name, (_, value) in host_memory.SETTINGS.items()}
  assert tuned["applied"] == expected and tuned["again"] == expected
  assert (tuned["state_before"], tuned["state_after"]) == ("default", "tuned")
  assert (default["applied"], default["state_after"]) == (None, "default")
  # 32 MiB / 4 KiB pages: 8,193 faults per cycle with glibc's defaults, 0 tuned
  # (measured). A kernel that backs the buffer with huge pages faults far less
  # to begin with.
  if default["faults"] < 1000:
    pytest.skip(f"only {default['faults']:.0f} faults per cycle with glibc's defaults "
                f"(huge pages?): nothing to measure here")
  assert tuned["faults"] < default["faults"] / 20, (default, tuned)


def test_unsupported_c_library_changes_nothing(monkeypatch):
  monkeypatch.setattr(host_memory, "_applied", None)
  monkeypatch.setattr(host_memory, "_glibc", lambda: None)
  assert host_memory.tune_host_allocator() is None
  assert host_memory.host_allocator_state() == "default"


def test_a_refused_setting_is_named(monkeypatch):
  class RefusingLibc:
    def mallopt(self, option, value):
      return 0 if option == host_memory.SETTINGS["trim_threshold"][0] else 1
  monkeypatch.setattr(host_memory, "_applied", None)
  monkeypatch.setattr(host_memory, "_glibc", RefusingLibc)
  with pytest.raises(RuntimeError, match="refused trim_threshold=2147483648"):
    host_memory.tune_host_allocator()
  assert host_memory.host_allocator_state() == "default"


def test_a_run_goes_on_when_the_allocator_cannot_be_tuned(monkeypatch, tmp_path):
  def refuse():
    raise RuntimeError("glibc mallopt refused mmap_threshold=1073741824")
  monkeypatch.setattr(host_memory, "_applied", None)
  monkeypatch.setattr(host_memory, "tune_host_allocator", refuse)
  result = train_and_evaluate(tiny_config(), str(tmp_path))
  assert result["status"] == "done" and result["host_allocator"] == "default"
