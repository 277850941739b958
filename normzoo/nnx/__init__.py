"""normzoo's normalizers as flax.nnx modules (``normzoo.nnx.SpectralNorm``, ...)."""

from normzoo.nnx.reparam import SpectralNorm, WeightNorm

__all__ = ["SpectralNorm", "WeightNorm"]
