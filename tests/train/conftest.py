"""Markers of the training tests."""


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "multihost: starts 2 JAX processes on loopback CPU (deselect with "
      "-m 'not multihost')")
