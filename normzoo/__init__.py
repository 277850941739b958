"""normzoo: normalization layers for JAX/Flax, and experiments that measure them."""

from normzoo.norms import (NORMS, BatchNorm, GroupNorm, Identity, InstanceNorm, LayerNorm,
                           available_norms, batch_norm, get_norm, group_norm, instance_norm,
                           layer_norm, moments, register_norm, uses_batch_statistics)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm", "NORMS", "available_norms",
    "batch_norm", "get_norm", "group_norm", "instance_norm", "layer_norm", "moments",
    "register_norm", "uses_batch_statistics",
]
