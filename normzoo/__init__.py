"""normzoo: normalization layers for JAX/Flax, and experiments that measure them."""

from normzoo.norms import (NORMS, BatchNorm, GroupNorm, Identity, InstanceNorm, LayerNorm,
                           available_norms, batch_norm, get_norm, group_norm, instance_norm,
                           layer_norm, moments, register_norm, uses_batch_statistics)
from normzoo.norms import (CONVS, BatchRenorm, EvoNormB0, EvoNormS0, FilterResponseNorm,
                           FrozenBatchNorm, GhostBatchNorm, RMSNorm, SwitchableNorm,
                           WeightStandardizedConv, available_convs, batch_renorm, evonorm_b0,
                           evonorm_s0, filter_response_norm, fold_batch_norm, get_conv,
                           ghost_batch_norm, pallas_layer_norm, pallas_rms_norm,
                           precise_batch_stats, renorm_limits, rms_norm,
                           standardize_kernel, switchable_norm, weight_standardized_conv)
from normzoo.norms import (REPARAMS, SpectralNorm, WeightNorm, available_reparams, get_reparam,
                           spectral_normalize, weight_normalize)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm", "NORMS", "available_norms",
    "batch_norm", "get_norm", "group_norm", "instance_norm", "layer_norm", "moments",
    "register_norm", "uses_batch_statistics",
    "BatchRenorm", "CONVS", "EvoNormB0", "EvoNormS0", "FilterResponseNorm", "FrozenBatchNorm",
    "GhostBatchNorm", "RMSNorm", "SwitchableNorm", "WeightStandardizedConv", "available_convs",
    "batch_renorm", "evonorm_b0", "evonorm_s0", "filter_response_norm", "fold_batch_norm",
    "get_conv", "ghost_batch_norm", "precise_batch_stats", "renorm_limits", "rms_norm",
    "standardize_kernel", "switchable_norm", "weight_standardized_conv",
    # Pallas (Triton, GPU) kernels for the last axis
    "pallas_layer_norm", "pallas_rms_norm",
    # weight reparametrizations (layer wrappers)
    "REPARAMS", "SpectralNorm", "WeightNorm", "available_reparams", "get_reparam",
    "spectral_normalize", "weight_normalize",
]
