"""Test set-up shared by the whole suite.

Multi-device behaviour is tested on CPU: XLA must be told to expose 8 host
devices before jax is first imported, so this runs at collection start.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (must come after XLA_FLAGS is set)

jax.config.update("jax_enable_x64", False)


import zlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reseed_module_rng(request, monkeypatch):
  """Each test draws its module's ``RNG`` data from a seed of its own node id.

  Test modules keep a module-level ``RNG = np.random.default_rng(k)`` for
  their data. Shared across a module, each test's data would depend on which
  tests ran before it in the same process (``-k``, a rerun of failures, how
  pytest-xdist splits the suite): a tolerance that holds for one ordering
  could fail on another. Reseeded here, every test sees the same data
  however the suite is split or filtered.
  """
  if isinstance(getattr(request.module, "RNG", None), np.random.Generator):
    seed = zlib.crc32(request.node.nodeid.encode())
    monkeypatch.setattr(request.module, "RNG", np.random.default_rng(seed))
