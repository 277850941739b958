"""Command-line experiments: ``python -m experiments.main`` and ``python -m experiments.compare``."""
