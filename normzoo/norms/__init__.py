"""Normalizers: the functional core, linen modules and the name registry."""

from normzoo.norms.functional import batch_norm, group_norm, instance_norm, layer_norm
from normzoo.norms.modules import BatchNorm, GroupNorm, Identity, InstanceNorm, LayerNorm
from normzoo.norms.registry import (NORMS, available_norms, get_norm, register_norm,
                                    uses_batch_statistics)
from normzoo.norms.stats import moments
from normzoo.norms.conv import (CONVS, WeightStandardizedConv, available_convs, get_conv,
                                standardize_kernel, weight_standardized_conv)
from normzoo.norms.folding import fold_batch_norm
from normzoo.norms.precise import precise_batch_stats
from normzoo.norms.pallas_rows import pallas_layer_norm, pallas_rms_norm
from normzoo.norms.variants import (BatchRenorm, EvoNormB0, EvoNormS0, FilterResponseNorm,
                                    FrozenBatchNorm, GhostBatchNorm, RMSNorm, SwitchableNorm,
                                    batch_renorm, evonorm_b0, evonorm_s0, filter_response_norm,
                                    ghost_batch_norm, renorm_limits, rms_norm, switchable_norm)
from normzoo.norms.reparam import spectral_normalize, weight_normalize
from normzoo.norms.reparam_modules import SpectralNorm, WeightNorm
from normzoo.norms.reparam_registry import REPARAMS, available_reparams, get_reparam

__all__ = [
    "BatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm", "NORMS", "available_norms",
    "batch_norm", "get_norm", "group_norm", "instance_norm", "layer_norm", "moments",
    "register_norm", "uses_batch_statistics",
    # research variants, convolutions, PreciseBN, folding
    "BatchRenorm", "CONVS", "EvoNormB0", "EvoNormS0", "FilterResponseNorm", "FrozenBatchNorm",
    "GhostBatchNorm", "RMSNorm", "SwitchableNorm", "WeightStandardizedConv", "available_convs",
    "batch_renorm", "evonorm_b0", "evonorm_s0", "filter_response_norm", "fold_batch_norm",
    "get_conv", "ghost_batch_norm", "pallas_layer_norm", "pallas_rms_norm", "precise_batch_stats", "renorm_limits", "rms_norm",
    "standardize_kernel", "switchable_norm", "weight_standardized_conv",
    # weight reparametrizations (layer wrappers)
    "REPARAMS", "SpectralNorm", "WeightNorm", "available_reparams", "get_reparam",
    "spectral_normalize", "weight_normalize",
]
