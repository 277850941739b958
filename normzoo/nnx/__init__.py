"""normzoo's normalizers as flax.nnx modules (``normzoo.nnx.SpectralNorm``, ...)."""

from normzoo.nnx.reparam import REPARAMS, SpectralNorm, WeightNorm, get_reparam

__all__ = ["REPARAMS", "SpectralNorm", "WeightNorm", "get_reparam"]
