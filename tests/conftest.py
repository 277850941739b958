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
