"""The image's colours on each RoI's M x M mask grid, in CIELAB, for losses that use the image."""

from typing import List, Sequence

import torch
from torchvision.ops import roi_align

# sRGB (D65) to CIE XYZ, and the D65 white point: the standard matrices (IEC 61966-2-1).
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.950456, 1.0, 1.088754)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) sRGB in [0, 255] -> CIELAB (L in [0, 100]), as skimage.color.rgb2lab.

        linear = ((s + 0.055) / 1.055)^2.4 if s > 0.04045 else s / 12.92,   s = rgb / 255
        (X, Y, Z) = M linear / white,   f(t) = t^(1/3) if t > (6/29)^3 else t / (3 (6/29)^2) + 4/29
        L = 116 f(Y) - 16,   a = 500 (f(X) - f(Y)),   b = 200 (f(Y) - f(Z))
    """
    s = (rgb.float() / 255.0).clamp(0, 1)
    linear = torch.where(s > 0.04045, ((s + 0.055) / 1.055) ** 2.4, s / 12.92)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=linear.dtype, device=linear.device)
    white = torch.tensor(_WHITE, dtype=linear.dtype, device=linear.device)
    xyz = torch.einsum("ij,...jhw->...ihw", matrix, linear) / white[:, None, None]
    delta = 6.0 / 29.0
    f = torch.where(xyz > delta**3, xyz.clamp(min=delta**3) ** (1 / 3), xyz / (3 * delta**2) + 4 / 29)
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def roi_lab_colors(
    images: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    side: int,
    pixel_mean: Sequence[float],
    pixel_std: Sequence[float],
    input_format: str,
) -> List[torch.Tensor]:
    """Per image, the (R_i, 3, side, side) CIELAB colours of its RoIs' mask grids.

    Args:
        images: (B, 3, H, W) the model's normalized input batch ((x - mean) / std, channels in
            `input_format`, "RGB" or "BGR").
        boxes: per image, (R_i, 4) boxes (x0, y0, x1, y1) in input pixels.
        side: M, the side of the predicted masks; each grid cell gets the RoIAlign average
            of the image over that cell, the way the mask targets are cropped to the RoI.
    """
    if input_format not in ("RGB", "BGR"):
        raise ValueError(f"INPUT.FORMAT {input_format!r}: colour losses need 'RGB' or 'BGR'")
    mean = torch.tensor(pixel_mean, dtype=torch.float32, device=images.device)[:, None, None]
    std = torch.tensor(pixel_std, dtype=torch.float32, device=images.device)[:, None, None]
    pixels = images.detach().float() * std + mean
    if input_format == "BGR":
        pixels = pixels.flip(dims=[1])
    boxes = [b.detach().float() for b in boxes]
    cells = roi_align(pixels, boxes, output_size=side, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return list(rgb_to_lab(cells).split([len(b) for b in boxes]))
