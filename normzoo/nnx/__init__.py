"""normzoo for flax.nnx: the same normalizers as nnx.Module classes.

``normzoo.nnx.BatchNorm`` is a drop-in for ``flax.nnx.BatchNorm`` (likewise
LayerNorm, GroupNorm, InstanceNorm, RMSNorm); the research variants and the
weight-standardized conv have nnx forms too, as do flax's SpectralNorm and
WeightNorm, and :func:`get_norm` builds any
of them by name. The math is the functional core's (:mod:`normzoo.norms`),
shared with the linen modules.
"""

from normzoo.nnx.conv import CONVS, WeightStandardizedConv, available_convs, get_conv
from normzoo.nnx.modules import BatchNorm, GroupNorm, Identity, InstanceNorm, LayerNorm, RMSNorm
from normzoo.nnx.registry import (NORMS, available_norms, get_norm, register_norm,
                                  uses_batch_statistics)
from normzoo.nnx.reparam import REPARAMS, SpectralNorm, WeightNorm, get_reparam
from normzoo.nnx.variants import (BatchRenorm, EvoNormB0, EvoNormS0, FilterResponseNorm,
                                  FrozenBatchNorm, GhostBatchNorm, SwitchableNorm)

__all__ = [
    "BatchNorm", "BatchRenorm", "CONVS", "EvoNormB0", "EvoNormS0", "FilterResponseNorm",
    "FrozenBatchNorm", "GhostBatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm",
    "NORMS", "RMSNorm", "SwitchableNorm", "WeightStandardizedConv", "available_convs",
    "available_norms", "get_conv", "get_norm", "register_norm", "uses_batch_statistics",
    # weight reparametrizations (layer wrappers)
    "REPARAMS", "SpectralNorm", "WeightNorm", "get_reparam",
]
