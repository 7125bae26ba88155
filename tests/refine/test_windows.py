"""Refinement works on windows around each object: the segmentations written and the candidate
masks (GrabCut, the vote) equal those made on the whole image."""

import numpy as np
from pycocotools import mask as mask_utils
from refine_cases import outline_case, write_case
from samples import pycocotools_rle

from noisy_mask.coco.io import read_image
from noisy_mask.coco.rle import decode, uncompressed_counts
from noisy_mask.noise.models import mask_to_polygons
from noisy_mask.refine.audited import read_audited
from noisy_mask.refine.candidates import candidate_masks, suspicious
from noisy_mask.refine.changes import segmentation_like
from noisy_mask.refine.choose import AGREEMENT, GRABCUT, PREDICTION
from noisy_mask.refine.options import MAX_IOU, MIN_IOU
from noisy_mask.refine.sources import grabcut_mask, vote_mask


def blob_masks(trials: int = 40, seed: int = 0):
    """Masks of one to three rectangles (apart, touching, holed, at the image's edges) and an
    empty one."""
    rng = np.random.default_rng(seed)
    yield np.zeros((30, 40), dtype=bool)
    for _ in range(trials):
        height, width = (int(v) for v in rng.integers(8, 90, size=2))
        mask = np.zeros((height, width), dtype=bool)
        for _ in range(int(rng.integers(1, 4))):
            top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
            rows, cols = (int(v) for v in rng.integers(1, 30, size=2))
            mask[top : top + rows, left : left + cols] = True
        if rng.random() < 0.3 and mask.sum() > 20:  # a hole in the middle of one
            rows, cols = np.nonzero(mask)
            mask[rows[len(rows) // 2], cols[len(cols) // 2]] = False
        yield mask


def test_segmentations_equal_the_whole_masks_traced_and_encoded():
    for mask in blob_masks():
        rle = pycocotools_rle(mask)
        polygons = segmentation_like([[0, 0, 1, 0, 1, 1]], rle)
        assert polygons == [p.reshape(-1).tolist() for p in mask_to_polygons(mask)]
        listed = segmentation_like({"counts": [5]}, rle)
        assert listed == {"size": list(mask.shape), "counts": uncompressed_counts(mask)}
        string = segmentation_like({"counts": "5"}, rle)
        assert string == {"size": list(mask.shape), "counts": rle["counts"].decode("ascii")}


def test_grabcut_and_the_vote_on_windows_equal_the_whole_image(tmp_path):
    # annotations 3 px too large, predictions 2 px to the right: mask IoU 400 / 676, all
    # suspicious; GrabCut's windows are cut by the 64 x 64 image's edges on every side
    gt, results, truth = outline_case(by=3, shift=2)
    case = write_case(tmp_path, gt, results, truth["objects"])
    audited = read_audited(case["gt"], case["audit"])
    ids = suspicious(audited, MIN_IOU, MAX_IOU)
    assert len(ids) == 6
    candidates = candidate_masks(audited, ids, case["images"], (PREDICTION, GRABCUT, AGREEMENT))
    images = {image["id"]: image for image in gt["images"]}
    for ann_id in ids:
        score = audited.scores[ann_id]
        pixels = read_image(case["images"], images[score.image_id])
        annotation, prediction = (decode(r, 64, 64) for r in (score.ann_rle, score.pred_rle))
        found = grabcut_mask(pixels, annotation)
        vote = vote_mask([annotation, prediction, found])
        masks = candidates[ann_id]
        assert masks[PREDICTION] is score.pred_rle and masks["annotation"] is score.ann_rle
        assert np.array_equal(mask_utils.decode(masks[GRABCUT]).astype(bool), found)
        assert np.array_equal(mask_utils.decode(masks[AGREEMENT]).astype(bool), vote)
        assert masks[GRABCUT] == pycocotools_rle(found)
