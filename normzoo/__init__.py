"""normzoo: normalization layers for JAX/Flax, and experiments that measure them."""

from normzoo.norms import (NORMS, BatchNorm, GroupNorm, Identity, InstanceNorm, LayerNorm,
                           available_norms, batch_norm, get_norm, group_norm, instance_norm,
                           layer_norm, moments, register_norm, uses_batch_statistics)
from normzoo.norms import BackendPolicy, backend_policy, current_policy
from normzoo.norms import (CONVS, BatchRenorm, EvoNormB0, EvoNormS0, FilterResponseNorm,
                           FrozenBatchNorm, GhostBatchNorm, RMSNorm, SwitchableNorm,
                           WeightStandardizedConv, available_convs, batch_renorm, evonorm_b0,
                           evonorm_s0, filter_response_norm, fold_batch_norm, get_conv,
                           ghost_batch_norm, pallas_layer_norm, pallas_rms_norm,
                           precise_batch_stats, renorm_limits, rms_norm,
                           standardize_kernel, switchable_norm, weight_standardized_conv)

from normzoo import nnx  # noqa: E402  (normzoo.nnx: the flax.nnx modules)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm", "NORMS", "available_norms",
    "batch_norm", "get_norm", "group_norm", "instance_norm", "layer_norm", "moments",
    "register_norm", "uses_batch_statistics",
    "BackendPolicy", "backend_policy", "current_policy",
    "BatchRenorm", "CONVS", "EvoNormB0", "EvoNormS0", "FilterResponseNorm", "FrozenBatchNorm",
    "GhostBatchNorm", "RMSNorm", "SwitchableNorm", "WeightStandardizedConv", "available_convs",
    "batch_renorm", "evonorm_b0", "evonorm_s0", "filter_response_norm", "fold_batch_norm",
    "get_conv", "ghost_batch_norm", "precise_batch_stats", "renorm_limits", "rms_norm",
    "standardize_kernel", "switchable_norm", "weight_standardized_conv",
    # Pallas (Triton, GPU) kernels for the last axis
    "pallas_layer_norm", "pallas_rms_norm",
    # flax.nnx modules and their registry
    "nnx",
]
