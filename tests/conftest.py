"""Fixtures shared by the loss tests."""
import pytest
import torch

from noisy_mask.losses.table import uses_image_colors


def _image_options(name, logits):
    """The colours a loss of IMAGE_LOSSES takes besides logits and targets: two flat halves."""
    if not uses_image_colors(name):
        return {}
    colors = torch.zeros(logits.shape[0], 3, *logits.shape[1:])
    colors[..., logits.shape[-1] // 2 :] = 50.0
    return {"image_colors": colors}


@pytest.fixture
def image_options():
    """image_options(name, logits): the extra keyword options loss `name` needs, if any."""
    return _image_options
