"""Normalizers: the functional core, linen modules and the name registry."""

from normzoo.norms.functional import batch_norm, group_norm, instance_norm, layer_norm
from normzoo.norms.modules import BatchNorm, GroupNorm, Identity, InstanceNorm, LayerNorm
from normzoo.norms.registry import (NORMS, available_norms, get_norm, register_norm,
                                    uses_batch_statistics)
from normzoo.norms.stats import moments

__all__ = [
    "BatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm", "NORMS", "available_norms",
    "batch_norm", "get_norm", "group_norm", "instance_norm", "layer_norm", "moments",
    "register_norm", "uses_batch_statistics",
]
