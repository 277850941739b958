"""Data-parallel training: state, optimizers, jitted steps, checkpoints, metrics, the loop.

Entry point: :func:`train_and_evaluate` (``experiments/main.py`` wires it to
the command line); :func:`run_comparison` trains one run per normalizer.
"""

from normzoo.train.compare import comparison_table, run_comparison
from normzoo.train.host_memory import tune_host_allocator
from normzoo.train.loop import train_and_evaluate
from normzoo.train.optim import make_optimizer, make_schedule
from normzoo.train.state import TrainState, create_train_state
from normzoo.train.step import cross_entropy, make_eval_step, make_train_step
from normzoo.train.validate import validate_config

__all__ = [
    "TrainState", "comparison_table", "create_train_state", "cross_entropy", "make_eval_step",
    "make_optimizer", "make_schedule", "make_train_step", "run_comparison",
    "train_and_evaluate", "tune_host_allocator", "validate_config",
]
