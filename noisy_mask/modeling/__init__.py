"""The registered heads: the mask head whose loss is chosen in the config, and the ROI heads that
give it each RoI's colours. Importing this package registers both."""

from .mask_head import NoisyMaskRCNNConvUpsampleHead
from .roi_heads import NoisyMaskROIHeads

__all__ = ["NoisyMaskRCNNConvUpsampleHead", "NoisyMaskROIHeads"]
