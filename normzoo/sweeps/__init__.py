"""Config-driven sweeps: expansion, resumable execution, reports."""

from normzoo.sweeps.spec import Sweep, apply_overrides, grid, load_sweep, product, run_name, zip_axes

__all__ = ["Sweep", "apply_overrides", "grid", "load_sweep", "product", "run_name", "zip_axes"]
