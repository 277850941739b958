"""Training-step throughput: the same model with normzoo norms vs flax.linen norms.

    python -m benchmarks.train_step                         # all models, batch and group norm
    python -m benchmarks.train_step --models=mnist_cnn --norms=batch --rounds=5

Each case builds one model twice, once with the normzoo normalizer and once
with the flax.linen one (same arguments), and times the jitted SGD step
(forward, backward, batch-stat update, optimizer update; buffers donated) in
rounds that alternate between the two in a shuffled order. Reports images/s
(median over rounds) and the ratio normzoo / flax.

A third build without any normalizer (``Identity``) runs in the same rounds:
``none / flax`` is the ceiling of that ratio, the speedup a normalizer that
cost nothing would give. Where convolutions dominate the step it is close
to 1, and no normalizer can do better.
"""

from __future__ import annotations

# First: it sets OMP_WAIT_POLICY before anything can load PyTorch's OpenMP runtime.
from benchmarks.machine import setup_host, write_results  # isort: skip

import functools
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

import normzoo
from normzoo.models import get_model

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mnist_cnn", "cifar_cnn", "resnet20"], "Models.")
flags.DEFINE_list("norms", ["batch", "group"], "Normalizers (batch, group, layer, instance).")
flags.DEFINE_integer("batch_size", 128, "Images per step.")
flags.DEFINE_integer("rounds", 5, "Timed rounds per implementation.")
flags.DEFINE_integer("steps", 5, "Steps per round.")
flags.DEFINE_string("json", "benchmarks/out/train_step.json", "Where to write results ('' = don't).")

INPUT_SHAPES = {"mnist_cnn": (28, 28, 1), "mnist_cnn_small": (28, 28, 1), "cifar_cnn": (32, 32, 3),
                "resnet20": (32, 32, 3), "resnet18": (32, 32, 3)}


def norm_pair(name: str):
  """(normzoo constructor, flax.linen constructor) with identical arguments."""
  if name == "batch":
    return normzoo.get_norm("batch", momentum=0.9), functools.partial(nn.BatchNorm, momentum=0.9)
  if name == "group":
    return (normzoo.get_norm("group", num_groups=8),
            functools.partial(nn.GroupNorm, num_groups=8))
  if name == "instance":
    return normzoo.get_norm("instance"), nn.InstanceNorm
  if name == "layer":  # channels-only layer norm: the one flax.linen also has
    return normzoo.get_norm("layer", reduction_axes=-1), nn.LayerNorm
  raise ValueError(f"unknown benchmark norm {name!r}; valid: batch, group, instance, layer")


def make_step(model: nn.Module, tx: optax.GradientTransformation):
  def loss_fn(params, batch_stats, images, labels):
    variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
    logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, updates.get("batch_stats", batch_stats)

  @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
  def step(params, batch_stats, opt_state, images, labels):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, images, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  return step


class _Runner:
  def __init__(self, model_name: str, norm, images, labels):
    model = get_model(model_name, num_classes=10, norm=norm)
    variables = model.init(jax.random.PRNGKey(0), images[:2], train=False)
    self.tx = optax.sgd(0.01, momentum=0.9)
    self.params = variables["params"]
    self.batch_stats = variables.get("batch_stats", {})
    self.opt_state = self.tx.init(self.params)
    self.step = make_step(model, self.tx)
    self.images, self.labels = images, labels

  def run(self, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      self.params, self.batch_stats, self.opt_state, loss = self.step(
          self.params, self.batch_stats, self.opt_state, self.images, self.labels)
    loss.block_until_ready()
    return time.perf_counter() - start


def check_names(models: list[str], norms: list[str], model_flag: str = "models",
                norm_flag: str = "norms") -> None:
  """Raises a UsageError naming the flag for an unknown model or normalizer name."""
  unknown = [m for m in models if m not in INPUT_SHAPES]
  if unknown:
    raise app.UsageError(
        f"--{model_flag}: unknown model(s) {unknown}; known: {sorted(INPUT_SHAPES)}")
  for name in norms:
    try:
      norm_pair(name)
    except ValueError as e:
      raise app.UsageError(f"--{norm_flag}: {e}") from None


def synthetic_batch(model_name: str, batch_size: int) -> tuple[jax.Array, jax.Array]:
  """(images, labels): standard-normal images of the model's input shape, labels in [0, 10)."""
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.standard_normal((batch_size,) + INPUT_SHAPES[model_name]), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)
  return images, labels


def run_case(model_name: str, norm_name: str, batch_size: int, rounds: int, steps: int) -> dict:
  images, labels = synthetic_batch(model_name, batch_size)
  ours, theirs = norm_pair(norm_name)
  runners = {"normzoo": _Runner(model_name, ours, images, labels),
             "flax": _Runner(model_name, theirs, images, labels),
             "none": _Runner(model_name, normzoo.Identity, images, labels)}
  for r in runners.values():  # compile and warm up
    r.run(2)
  samples = {k: [] for k in runners}
  order = list(runners)
  shuffle = np.random.default_rng(1)
  for _ in range(rounds):
    shuffle.shuffle(order)
    for k in order:
      samples[k].append(batch_size * steps / runners[k].run(steps))
  ips = {k: statistics.median(v) for k, v in samples.items()}
  return dict(model=model_name, norm=norm_name, batch_size=batch_size,
              normzoo_images_per_s=ips["normzoo"], flax_images_per_s=ips["flax"],
              none_images_per_s=ips["none"], speedup=ips["normzoo"] / ips["flax"],
              ceiling=ips["none"] / ips["flax"])


def main(argv):
  del argv
  check_names(FLAGS.models, FLAGS.norms)
  setup_host()
  rows, skipped = [], []
  print("| model | norm | normzoo img/s | flax.linen img/s | no norm img/s | normzoo / flax | "
        "ceiling (no norm / flax) |")
  print("|---|---|---|---|---|---|---|")
  for model_name in FLAGS.models:
    for norm_name in FLAGS.norms:
      try:
        r = run_case(model_name, norm_name, FLAGS.batch_size, FLAGS.rounds, FLAGS.steps)
      except ValueError as e:  # a model that rejects the norm (cifar_cnn's dense layer: instance)
        skipped.append(f"{model_name}/{norm_name}: {e}")
        continue
      rows.append(r)
      print(f"| {model_name} | {norm_name} | {r['normzoo_images_per_s']:.0f} | "
            f"{r['flax_images_per_s']:.0f} | {r['none_images_per_s']:.0f} | {r['speedup']:.2f} | "
            f"{r['ceiling']:.2f} |", flush=True)
  for line in skipped:
    print(f"skipped {line}")
  write_results(FLAGS.json, rows)


if __name__ == "__main__":
  app.run(main)
