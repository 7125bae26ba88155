"""The noise options: range checks and presets with options replaced."""

import pytest

from noisy_mask.noise.params import APPLY_TO, PRESETS, NoiseParams, make_params


def test_params_check_and_overrides():
    assert make_params("hard", kernel=0, jitter_sigma=None) == NoiseParams(15.0, 4.0, 0, 0.05, 0.05)
    for bad in ({"kernel": 4}, {"kernel": 1}, {"delete_fraction": 1.5}, {"jitter_sigma": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_params("mid", **bad)
    with pytest.raises(ValueError, match="valid presets: easy, mid, hard"):
        make_params("medium")


def test_presets_grow_harsher_and_apply_to_both():
    sizes = [
        (p.simplify_tolerance, p.jitter_sigma, p.kernel)
        for p in (PRESETS["easy"], PRESETS["mid"], PRESETS["hard"])
    ]
    assert sizes == [(5.0, 2.0, 3), (10.0, 3.0, 5), (15.0, 4.0, 7)]
    assert {p.apply_to for p in PRESETS.values()} == {"both"} and APPLY_TO[0] == "both"
    assert make_params(None) == NoiseParams()  # everything off
