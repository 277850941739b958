"""tune_host_allocator: large XLA:CPU buffers stop being page-faulted in on every call.

Measured in a fresh subprocess (the settings are process-wide and one-way),
by counting minor page faults, not by timing.
"""

import json
import os
import subprocess
import sys

import pytest

from normzoo.train import host_memory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = r"""
import json, resource
import jax, jax.numpy as jnp
from normzoo.train import host_memory

x = jnp.ones((256, 32, 32, 32), jnp.float32)  # 32 MiB: above glibc's default mmap threshold
double = jax.jit(lambda x: x * 2)

def faults_per_call(calls=5):
  for _ in range(2):
    double(x).block_until_ready()
  start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(calls):
    double(x).block_until_ready()
  return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / calls

before = faults_per_call()
state_before = host_memory.host_allocator_state()
applied = host_memory.tune_host_allocator()
print(json.dumps(dict(before=before, after=faults_per_call(), applied=applied,
                      again=host_memory.tune_host_allocator(), state_before=state_before,
                      state_after=host_memory.host_allocator_state())))
"""


@pytest.mark.skipif(host_memory._glibc() is None, reason="needs glibc (Linux)")
def test_tuning_removes_per_call_page_faults_of_large_outputs():
  env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
  env["JAX_PLATFORMS"] = "cpu"
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, env=env, check=True,
                       capture_output=True, text=True).stdout
  r = json.loads(out.strip().splitlines()[-1])
  expected = {name: value for name, (_, value) in host_memory.SETTINGS.items()}
  assert r["applied"] == expected and r["again"] == expected
  assert (r["state_before"], r["state_after"]) == ("default", "tuned")
  # 32 MiB / 4 KiB pages: about 8,200 faults per call with glibc's defaults.
  # A kernel that backs the buffers with huge pages faults far less to begin with.
  if r["before"] < 1000:
    pytest.skip(f"only {r['before']:.0f} faults per call before tuning (huge pages?): "
                f"nothing to measure here")
  assert r["after"] < r["before"] / 20, r


def test_unsupported_c_library_changes_nothing(monkeypatch):
  monkeypatch.setattr(host_memory, "_applied", None)
  monkeypatch.setattr(host_memory, "_glibc", lambda: None)
  assert host_memory.tune_host_allocator() is None
  assert host_memory.host_allocator_state() == "default"
