"""Normalizers: the functional core, linen modules, the name registry and the backend policy.

``__all__`` here is the one public export list; :mod:`normzoo` re-exports it.
"""

from normzoo.norms import variants
import warnings

from normzoo.norms.conv import CONVS, WeightStandardizedConv, available_convs, get_conv
from normzoo.norms.folding import fold_batch_norm
from normzoo.norms.functional import batch_norm, group_norm, instance_norm, layer_norm
from normzoo.norms.modules import BatchNorm, GroupNorm, Identity, InstanceNorm, LayerNorm
from normzoo.norms.pallas_rows import pallas_layer_norm, pallas_rms_norm
from normzoo.norms.policy import BackendPolicy, backend_policy, current_policy
from normzoo.norms.precise import precise_batch_stats
from normzoo.norms.registry import (NORMS, available_norms, get_norm, instantiate_norm,
                                    register_norm, uses_batch_statistics)
from normzoo.norms.reparam import spectral_normalize, weight_normalize
from normzoo.norms.reparam_modules import SpectralNorm, WeightNorm
from normzoo.norms.reparam_registry import REPARAMS, available_reparams, get_reparam
from normzoo.norms.stats import moments
from normzoo.norms.variants import *  # noqa: F401,F403  (the research variants: variants.__all__)
from normzoo.norms.weight_std import standardize_kernel

__all__ = sorted([
    # core normalizers: functions and linen modules
    "BatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm", "batch_norm",
    "group_norm", "instance_norm", "layer_norm", "moments",
    # registry
    "NORMS", "available_norms", "get_norm", "instantiate_norm", "register_norm",
    "uses_batch_statistics",
    # backend policy (implementation choices, part of jit cache keys)
    "BackendPolicy", "backend_policy", "current_policy",
    # convolutions, PreciseBN, folding, Pallas kernels (GPU, last axis)
    "CONVS", "WeightStandardizedConv", "available_convs", "get_conv", "standardize_kernel",
    "fold_batch_norm", "precise_batch_stats", "pallas_layer_norm",
    "pallas_rms_norm",
    # weight reparametrizations (layer wrappers)
    "REPARAMS", "SpectralNorm", "WeightNorm", "available_reparams", "get_reparam",
    "spectral_normalize", "weight_normalize",
    *variants.__all__,
])

# Old names kept importable for a while, with a DeprecationWarning naming the new one.
_DEPRECATED = {"weight_standardized_conv": "WeightStandardizedConv"}


def __getattr__(name: str):
  if name in _DEPRECATED:
    new = _DEPRECATED[name]
    warnings.warn(f"normzoo.{name} is deprecated (a lowercase alias of a class); use "
                  f"normzoo.{new}", DeprecationWarning, stacklevel=2)
    return globals()[new]
  raise AttributeError(f"module 'normzoo' has no attribute {name!r}")
