"""Research variants of normalization: pure functions here, linen modules in ``modules``.

========================= ====================== ===================================
module                    registry name          paper
========================= ====================== ===================================
BatchRenorm               ``batch_renorm``       Ioffe, 2017
GhostBatchNorm            ``ghost_batch``        Hoffer, Hubara & Soudry, 2017
FilterResponseNorm        ``frn``                Singh & Krishnan, 2019
EvoNormB0 / EvoNormS0     ``evonorm_b0`` / _s0   Liu, Brock, Simonyan & Le, 2020
RMSNorm                   ``rms``                Zhang & Sennrich, 2019
SwitchableNorm            ``switchable``         Luo et al., 2019
FrozenBatchNorm           ``batch_frozen``       (fine-tuning practice)
========================= ====================== ===================================

The function files (``renorm``, ``ghost``, ``frn``, ``evonorm``, ``rms``,
``switchable``) import no flax; ``modules`` holds the flax.linen classes and
:mod:`normzoo.nnx.variants` the flax.nnx ones.
"""

from normzoo.norms.variants.evonorm import evonorm_b0, evonorm_s0
from normzoo.norms.variants.frn import filter_response_norm
from normzoo.norms.variants.ghost import ghost_batch_norm
from normzoo.norms.variants.modules import (BatchRenorm, EvoNormB0, EvoNormS0,
                                            FilterResponseNorm, FrozenBatchNorm, GhostBatchNorm,
                                            RMSNorm, SwitchableNorm)
from normzoo.norms.variants.renorm import batch_renorm, renorm_limits
from normzoo.norms.variants.rms import rms_norm
from normzoo.norms.variants.switchable import switchable_norm

__all__ = [
    "BatchRenorm", "EvoNormB0", "EvoNormS0", "FilterResponseNorm", "FrozenBatchNorm",
    "GhostBatchNorm", "RMSNorm", "SwitchableNorm", "batch_renorm", "evonorm_b0", "evonorm_s0",
    "filter_response_norm", "ghost_batch_norm", "renorm_limits", "rms_norm", "switchable_norm",
]
