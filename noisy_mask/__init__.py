"""noisy_mask: a Detectron2 mask head whose loss is chosen in the config.

`import noisy_mask` registers `NoisyMaskRCNNConvUpsampleHead` in `ROI_MASK_HEAD_REGISTRY`, and
`NoisyMaskROIHeads` (which gives that head the image's colours) in `ROI_HEADS_REGISTRY`.
"""

import contextlib
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def quiet_torchscript_deprecation() -> Iterator[None]:
    """Ignore torch's "`torch.jit.script` is deprecated" FutureWarning, and no other warning.

    fvcore and detectron2 script functions when they are imported; from torch 2.10 on each of
    those calls warns, which users can do nothing about. Wrap imports of detectron2 in this.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        yield


def _not_fx_tracing_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("is_fx_tracing will return true")


# detectron2's ROIPooler asks torch.fx whether it is tracing; from torch 2.10 on that logs a
# warning about torch.fx's own API once per process, which users can do nothing about.
logging.getLogger("torch.fx._symbolic_trace").addFilter(_not_fx_tracing_notice)

with quiet_torchscript_deprecation():
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
