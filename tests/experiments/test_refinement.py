"""The refinement arm's pieces that need no training: the built-in reference, the flags of
`python -m noisy_mask.robustness --refine`, and the refined level's data."""
import json
from dataclasses import asdict

import pytest

from noisy_mask.data import generate_shapes_dataset
from noisy_mask.experiments import refinement
from noisy_mask.experiments.options import RefineArm
from noisy_mask.experiments.levels import Splits, base_level, level_data, refined_json
from noisy_mask.commands.robustness import build_parser, refine_arm


def test_reference_is_the_clean_annotations_of_the_first_images(tmp_path):
    coco = {"images": [{"id": i} for i in (3, 1, 2)], "categories": [],
            "annotations": [{"id": 10 + i, "image_id": i} for i in (1, 2, 3, 3)]}
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(coco))
    reference = refinement.write_reference(str(clean), 2, tmp_path / "ref.json")
    written = json.loads(reference.read_text())
    assert [i["id"] for i in written["images"]] == [1, 2]
    assert [a["image_id"] for a in written["annotations"]] == [1, 2]


@pytest.mark.parametrize("argv, error", [
    (["--refine-losses", "bce"], "--refine-losses goes with --refine"),
    (["--keep-missing"], "--keep-missing goes with --refine"),
    (["--refine-fix-classes"], "--refine-fix-classes goes with --refine"),
    (["--refine", "--refine-folds", "1"], "--refine-folds must be at least 2"),
    (["--refine", "--refine-reference", "ref.json"], "--refine-reference goes with --train"),
    (["--refine-max-iou", "1"], "--refine-max-iou goes with --refine"),
    (["--refine", "--refine-max-iou", "0.4"], "min_iou 0.5 must be below max_iou 0.4"),
])
def test_refine_flags_are_checked(argv, error, capsys):
    parser = build_parser()
    args = parser.parse_args(["--output", "out", *argv])
    with pytest.raises(SystemExit):
        refine_arm(parser, args, builtin=True)
    assert error in capsys.readouterr().err


def test_refine_arm_from_the_flags(tmp_path):
    parser = build_parser()
    assert refine_arm(parser, parser.parse_args(["--output", "o"]), builtin=True) is None
    builtin = refine_arm(parser, parser.parse_args(["--output", "o", "--refine"]), builtin=True)
    assert builtin == RefineArm(folds=2, source="auto", reference=None,
                                           reference_images=5, add_missing=True)
    reference = tmp_path / "ref.json"
    reference.write_text("{}")
    args = parser.parse_args(["--output", "o", "--refine", "--refine-reference", str(reference),
                              "--refine-folds", "3", "--keep-missing", "--refine-source",
                              "grabcut", "--refine-fix-classes"])
    assert refine_arm(parser, args, builtin=False) == RefineArm(
        folds=3, source="grabcut", reference=str(reference), reference_images=0,
        add_missing=False, fix_classes=True)
    assert "reference " + str(reference) in refine_arm(parser, args, builtin=False).describe()
    assert "audited mask IoU in [0.5, 0.8)" in refine_arm(parser, args, builtin=False).describe()
    wide = refine_arm(parser, parser.parse_args(["--output", "o", "--refine", "--refine-max-iou",
                                                 "1"]), builtin=True)  # fmt: skip
    assert wide.max_iou == 1.0 and wide.options().max_iou == 1.0
    assert "every matched mask" in wide.describe()


def test_a_refined_copy_is_used_again_only_if_made_as_asked(tmp_path):
    # the report a refine with the arm's options writes, and one with another --max-iou
    report = tmp_path / "refined.refine_report.json"
    made = RefineArm(reference_images=5)
    report.write_text(json.dumps({"options": asdict(made.options())}))
    refinement.check_made_as_asked(report, made)
    with pytest.raises(ValueError, match=r"refined.refine_report.json: this refined copy was "
                                         r"made with max_iou 0.8 \(asked 1.0\)"):
        refinement.check_made_as_asked(report, RefineArm(max_iou=1.0))
    # a grid checks every copy already in its folder before it trains anything
    copy = refined_json(tmp_path, "mid", 1)
    copy.parent.mkdir(parents=True)
    copy.with_suffix(".refine_report.json").write_text(report.read_text())
    refinement.check_refined_copies(tmp_path, ["mid", "hard"], [0, 1], made)
    with pytest.raises(ValueError, match=r"seed1/instances_train_refined.refine_report.json: .*"
                                         r"max_iou 0.8 \(asked 1.0\)"):
        refinement.check_refined_copies(tmp_path, ["mid"], [0, 1],
                                        RefineArm(max_iou=1.0))


def test_refined_level_trains_on_the_refined_copy(tmp_path):
    paths = generate_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, seed=3)
    splits = Splits(paths["train_json"], paths["train_images"], paths["val_json"],
                    paths["val_images"])
    assert base_level("mid_refined") == "mid" and base_level("mid") == "mid"
    with pytest.raises(FileNotFoundError, match="level mid_refined, seed 1: .*not made yet"):
        level_data(tmp_path, splits, "mid_refined", 1)
    refined = refined_json(tmp_path, "mid", 1)
    refined.parent.mkdir(parents=True)
    refined.write_text("{}")
    data = level_data(tmp_path, splits, "mid_refined", 1)
    noisy = level_data(tmp_path, splits, "mid", 1)
    assert data == dict(noisy, train_json=str(refined), noise="mid_refined",
                        refine_report=str(refined.with_suffix(".refine_report.json")))
    assert data["clean_train_json"] == paths["train_json"]
