"""Independent numpy random streams derived from the experiment seed.

Every random choice in the data package (subsets, shuffles, synthetic data)
draws from its own stream keyed by ``(seed, purpose, *extra)``, so changing one
of them -- say the test subset size -- never changes another.
"""

from __future__ import annotations

import enum

import numpy as np


class Stream(enum.IntEnum):
  """Purpose keys; values are part of the stream identity, do not renumber."""
  SHUFFLE = 1
  SUBSAMPLE_TRAIN = 2
  SUBSAMPLE_TEST = 3
  SYNTHETIC_TEMPLATES = 4
  SYNTHETIC_TRAIN = 5
  SYNTHETIC_TEST = 6
  VALIDATION = 7


def rng_for(seed: int, stream: Stream, *extra: int) -> np.random.Generator:
  """A generator that depends only on ``seed``, ``stream`` and ``extra``."""
  # SeedSequence rejects negative ints; masking keeps distinct 64-bit seeds distinct.
  entropy = [int(seed) & 0xFFFF_FFFF_FFFF_FFFF, int(stream), *(int(e) for e in extra)]
  return np.random.default_rng(np.random.SeedSequence(entropy))
