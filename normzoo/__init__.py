"""normzoo: normalization layers for JAX/Flax, and experiments that measure them.

The public API is :mod:`normzoo.norms`' export list, plus :mod:`normzoo.nnx`
(the same normalizers as flax.nnx modules).
"""

from normzoo import norms as _norms
from normzoo.norms import *  # noqa: F401,F403  (the public API: normzoo.norms.__all__)

from normzoo import nnx  # noqa: E402  (after the linen API it builds on)

__version__ = "0.1.0"
__getattr__ = _norms.__getattr__  # deprecated names (normzoo/norms/__init__.py)

__all__ = [*_norms.__all__, "nnx"]
