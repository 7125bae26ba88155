"""noisy_mask: a Detectron2 mask head whose loss is chosen in the config.

`import noisy_mask` registers `NoisyMaskRCNNConvUpsampleHead` in `ROI_MASK_HEAD_REGISTRY`, and
`NoisyMaskROIHeads` (which gives that head the image's colours) in `ROI_HEADS_REGISTRY`.
"""

from .config import add_noisy_mask_config, check_noisy_mask_config
from .losses.table import MASK_LOSSES
from .modeling.mask_head import NoisyMaskRCNNConvUpsampleHead
from .modeling.roi_heads import NoisyMaskROIHeads

__all__ = [
    "MASK_LOSSES",
    "NoisyMaskRCNNConvUpsampleHead",
    "NoisyMaskROIHeads",
    "add_noisy_mask_config",
    "check_noisy_mask_config",
]
