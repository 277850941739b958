"""Defaults for every experiment field; the other configs start from this one.

Run with ``normzoo-train --config=normzoo:<name> --workdir=DIR`` (in a clone:
``python -m experiments.main --config=configs/<name>.py --workdir=DIR``)
and override any field on the command line, e.g. ``--config.num_epochs=3``.

Normalizer arguments (``norm_kwargs``): the command line can set a key that
already exists in the dict (``--config.norm_kwargs.momentum=0.8``), but a
locked config refuses new keys one by one. Pass the whole dict instead; it
REPLACES ``norm_kwargs`` (keys not repeated are gone)::

  --config.norm=group --config.norm_kwargs='{"num_groups": 8}'

``per_norm_kwargs`` holds the recipe's defaults for each norm name (used when
that norm is selected, e.g. by ``experiments.compare``); ``norm_kwargs`` is
applied on top of them for the chosen norm. Override a per-norm default with
``--config.per_norm_kwargs.batch.momentum=0.99`` or replace a norm's entry
with ``--config.per_norm_kwargs.group='{"num_groups": 16}'``.

Multi-process runs: set ``distributed.coordinator_address`` (``host:port``
of process 0), ``distributed.num_processes`` and ``distributed.process_id``
(or ``distributed.auto=True`` on a cluster ``jax.distributed`` detects); all
processes share ``--workdir``. See ``normzoo/train/distributed.py``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()

  # Data (see normzoo/data/loader.py).
  c.dataset = "synthetic"        # mnist | fashion_mnist | cifar10 | cifar100 | synthetic
  c.data_dir = ""                # '' = system location (Fashion-MNIST) or none
  c.train_examples = 0           # 0 = all; else a random subset of this size
  c.test_examples = 0
  # Held out of the training split for model selection and steps-to-target
  # (normzoo/data/loader.py): the same images for every seed, disjoint from
  # the training examples. 0 = none (then evaluations use the test set).
  # configs/fashion_mnist.py holds out 5,000 of the 60,000 training images.
  # With a validation split the test set is evaluated only at the end.
  c.validation_examples = 0

  # Model and normalizer.
  c.model = "mnist_cnn"          # mnist_cnn | mnist_cnn_small | cifar_cnn | resnet20 | resnet18 | mlp
  c.model_kwargs = ml_collections.ConfigDict()   # extra model fields, e.g. {'width': 256}
  c.norm = "batch"               # any name in normzoo.available_norms()
  c.norm_kwargs = ml_collections.ConfigDict()    # see the module docstring
  c.per_norm_kwargs = ml_collections.ConfigDict({
      # PyTorch's momentum 0.1: flax's 0.99 lags behind in short runs.
      "batch": {"momentum": 0.9},
      # 8 groups: with the default 32, a 32-channel layer would be instance norm.
      "group": {"num_groups": 8},
      # The variants with running averages or groups get the same defaults.
      "batch_renorm": {"momentum": 0.9},
      "ghost_batch": {"momentum": 0.9},
      "evonorm_b0": {"momentum": 0.9},
      "evonorm_s0": {"num_groups": 8},
      "switchable": {"momentum": 0.9},
  })
  c.norm_position = "before_activation"   # before_activation | after_activation
  c.sync_batch_stats = True      # batch statistics over the global batch (False: per device)
  c.kernel_init_scale = 1.0
  c.dropout_rate = 0.0           # dropout before the head (and the MLP's inner dense layers)
  c.conv = "standard"            # standard | ws (weight-standardized; pairs with group norm)
  c.precise_bn_batches = 0       # >0: PreciseBN over this many train batches before each eval
  c.half_precision = False       # bf16 compute; params and norm statistics stay float32

  # Optimization.
  c.batch_size = 128             # global, over all devices and processes
  c.num_epochs = 10
  c.optimizer = "sgd"            # sgd | adam | adamw
  c.learning_rate = 0.05
  c.momentum = 0.9               # sgd only
  c.nesterov = False             # sgd only
  c.weight_decay = 0.0           # sgd/adam: L2 added to the gradient; adamw: decoupled
  c.weight_decay_mask = "all"    # all | kernels (exempt biases and norm scale/bias)
  c.lr_schedule = "constant"     # constant | cosine | step
  c.lr_boundaries_epochs = (5, 8)   # 'step': after these epochs lr *= lr_decay_factor
  c.lr_decay_factor = 0.1
  c.warmup_epochs = 0.0          # linear warmup from 0, combined with any schedule
  c.label_smoothing = 0.0
  c.seed = 0

  # Bookkeeping.
  c.eval_every_epochs = 1
  c.checkpoint_every_epochs = 1  # 0 = only at the end
  c.log_every_steps = 0          # >0: log (and check for divergence) every N steps (else 100)
  # Progress: a bar on a terminal; otherwise a log line at most every N seconds
  # (0: none). Steps between updates of its loss, and of the train_step/*
  # TensorBoard scalars: log_every_steps (else 100).
  c.progress_interval_s = 30.0
  # A mean train loss above this counts as diverged (normzoo/train/divergence.py).
  c.divergence_loss_bound = 1e3
  # >0: evaluate (validation split, else test) every N steps, and at step 0,
  # instead of every eval_every_epochs; metrics.jsonl rows carry the step.
  c.eval_every_steps = 0
  # CPU: keep large buffers in the process heap instead of page-faulting them
  # in on every step (1.1-1.5x images/s; normzoo/train/host_memory.py).
  c.tune_host_allocator = True

  c.distributed = ml_collections.ConfigDict({
      "coordinator_address": "", "num_processes": 1, "process_id": 0, "auto": False})
  return c
