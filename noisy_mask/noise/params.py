"""The options of the mask noise, and the presets easy, mid and hard.

Presets use the sizes of the COCO-N benchmark (Grad, Kimhi et al., 2024): tolerance 5/10/15 px,
sigma 2/3/4 px, kernel 3/5/7 for easy/mid/hard, with 5% deletion and 5% class flips (skipped on a
file of one category, which has no other class to flip to). COCO-N draws one of its boundary
models for a random part of the instances; here every model applies to every instance, so a
preset is harsher than the COCO-N level of the same name. Sizes are for a 640 px image;
`noise.models.instance_sizes` scales them to each instance.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..coco.values import is_int

# What the outline noise changes: the mask and its box, only the masks, or only the boxes.
APPLY_TO = ("both", "masks", "boxes")


@dataclass(frozen=True)
class NoiseParams:
    """Noise sizes at 640 px image scale (see `noise.models.instance_sizes` for the scaling)."""

    simplify_tolerance: float = 0.0  # px, Douglas-Peucker tolerance; 0 = off
    jitter_sigma: float = 0.0  # px, std of the vertex noise; 0 = off
    kernel: int = 0  # side of the dilation/erosion square, odd >= 3; 0 = off
    delete_fraction: float = 0.0  # fraction of instances removed, in [0, 1]
    flip_fraction: float = 0.0  # fraction of instances given another category, in [0, 1]
    apply_to: str = "both"  # what the outline noise changes: "both", "masks" or "boxes"

    def check(self) -> "NoiseParams":
        """Raise ValueError naming the first option out of range; return self."""
        for name in ("simplify_tolerance", "jitter_sigma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (0 = off), got {value}")
        odd = is_int(self.kernel) and self.kernel >= 3 and self.kernel % 2 == 1
        if not (odd or self.kernel == 0):
            raise ValueError(f"kernel must be 0 (off) or an odd integer >= 3, got {self.kernel}")
        for name in ("delete_fraction", "flip_fraction"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.apply_to not in APPLY_TO:
            raise ValueError(
                f"apply_to must be one of {', '.join(APPLY_TO)}, got {self.apply_to!r}"
            )
        return self


PRESETS: Dict[str, NoiseParams] = {
    "easy": NoiseParams(5.0, 2.0, 3, 0.05, 0.05),
    "mid": NoiseParams(10.0, 3.0, 5, 0.05, 0.05),
    "hard": NoiseParams(15.0, 4.0, 7, 0.05, 0.05),
}


def make_params(preset: Optional[str] = "mid", **overrides: Any) -> NoiseParams:
    """A preset with some options replaced (None values are ignored); preset None = all off."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(NoiseParams)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown noise option(s) {unknown}; valid options: {sorted(names)}")
    base = PRESETS[preset] if preset is not None else NoiseParams()
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **given).check()
