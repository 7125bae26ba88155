"""The robustness grid on a user's data: a one-category dataset written as RLE, end to end."""
import hashlib
import json
import re

import pytest

from noisy_mask.data import generate_shapes_dataset


def one_category_rle_copy(paths, out_dir):
    """The shapes splits with every instance in one category "object" and masks as RLE strings,
    as many real datasets (cells, nuclei, buildings) come."""
    from pycocotools import mask as mask_utils

    copies = {}
    for split in ("train", "val"):
        coco = json.loads(open(paths[f"{split}_json"]).read())
        sizes = {image["id"]: (image["height"], image["width"]) for image in coco["images"]}
        for ann in coco["annotations"]:
            rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"],
                                                          *sizes[ann["image_id"]]))
            ann["segmentation"] = dict(size=rle["size"], counts=rle["counts"].decode())
            ann["category_id"] = 1
        coco["categories"] = [dict(id=1, name="object")]
        copies[split] = out_dir / f"{split}.json"
        copies[split].write_text(json.dumps(coco))
    return copies


@pytest.mark.slow
def test_grid_on_a_one_category_rle_dataset_writes_a_verdict_and_resumes(tmp_path, capsys):
    from noisy_mask.commands.robustness import main

    paths = generate_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=3, seed=4)
    files = one_category_rle_copy(paths, tmp_path)
    out = tmp_path / "grid"
    argv = ["--output", str(out), "--train", str(files["train"]), paths["train_images"],
            "--val", str(files["val"]), paths["val_images"], "--losses", "bce", "dice",
            "--levels", "as_is", "mid", "--seeds", "0", "--max-iter", "4", "--jobs", "2",
            "SOLVER.CHECKPOINT_PERIOD", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^4 runs \(4 to train\) on the CPU, .* min per run measured there", printed,
                     re.MULTILINE)

    config = (out / "config.yaml").read_text()
    assert "NUM_CLASSES: 1" in config and "MASK_FORMAT: bitmask" in config
    results = json.loads((out / "results.json").read_text())
    assert results["reference"] == "as_is" and results["start"]["describe"] == "trained from scratch"
    runs = {(r["level"], r["loss"]) for r in results["records"]}
    assert runs == {("as_is", "bce"), ("as_is", "dice"), ("mid", "bce"), ("mid", "dice")}
    assert all({"bbox", "segm", "boundary"} <= set(r["results"]) for r in results["records"])
    # One seed cannot tell a loss from seed noise, and the verdict says so at both levels.
    assert [line.split(":")[0] for line in results["verdict"]] == ["- as_is", "- mid"]
    assert all("cannot tell apart from seed noise" in line for line in results["verdict"])
    table = (out / "results.md").read_text()
    assert "Verdict (boundary AP):" in table and "### noise: as_is" in table
    # The noise presets on one category flip no class.
    report = json.loads((out / "dataset" / "instances_train_mid_seed0.noise_report.json").read_text())
    assert report["flipped"] == 0
    assert (out / "pr_curves_mid.png").stat().st_size > 0
    # every run evaluated on both halves of the 3 validation images; one seed shows no spread
    assert len(list(out.glob("runs/*/*/*/eval_halves.json"))) == 4
    assert "Where the seed spread comes from: needs 2 or more seeds" in table

    # A second call trains nothing: every run is finished, and the cost is not measured again.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/eval_results.json")}
    assert len(stamps) == 4
    assert main(argv) == 0
    assert "to train" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # Another validation file: the finished runs are evaluated on it again, not trained again.
    smaller = json.loads(files["val"].read_text())
    smaller["images"] = smaller["images"][:2]
    kept = {image["id"] for image in smaller["images"]}
    smaller["annotations"] = [a for a in smaller["annotations"] if a["image_id"] in kept]
    (tmp_path / "val2.json").write_text(json.dumps(smaller))
    weights = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/model_final.pth")}
    val_flag = argv.index("--val")
    argv[val_flag + 1] = str(tmp_path / "val2.json")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 finished runs to evaluate again" in printed and "to train" not in printed
    again = [line for line in printed.splitlines() if line.startswith("[")
             and "(evaluated again: the validation file has changed)" in line]
    assert len(again) == 4 and again[-1].startswith("[4/4] ")
    assert {p: p.stat().st_mtime_ns for p in weights} == weights and len(weights) == 4
    digest = hashlib.sha256((tmp_path / "val2.json").read_bytes()).hexdigest()
    for run in out.glob("runs/*/*/*"):
        assert json.loads((run / "evaluated_on.json").read_text())["sha256"] == digest
        detections = json.loads(
            (run / "inference" / "val_clean" / "coco_instances_results.json").read_text())
        assert detections and {d["image_id"] for d in detections} <= kept
        assert (run / "eval_results.json").stat().st_mtime_ns > stamps[run / "eval_results.json"]
        assert "val2.json" in (run / "evaluation" / "config.yaml").read_text()
        halves = json.loads((run / "eval_halves.json").read_text())
        assert halves["val_json"] == str(tmp_path / "val2.json")
    assert main(argv) == 0  # evaluated once
    assert "evaluate again" not in capsys.readouterr().out


@pytest.mark.slow
def test_refinement_arm_audits_refines_and_trains_on_the_copy(tmp_path, capsys):
    """--refine on a one-category RLE dataset with a 2-image reference: the noisy level is audited
    by 2 cross-fitted folds, refined, and bce trained on the copy as mid_refined; scored against
    the as_is annotations; a second call trains nothing."""
    from noisy_mask.commands.robustness import main

    paths = generate_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=3, seed=4)
    files = one_category_rle_copy(paths, tmp_path)
    reference = json.loads(files["train"].read_text())
    reference["images"] = reference["images"][:2]
    kept = {image["id"] for image in reference["images"]}
    reference["annotations"] = [a for a in reference["annotations"] if a["image_id"] in kept]
    (tmp_path / "reference.json").write_text(json.dumps(reference))
    out = tmp_path / "grid"
    argv = ["--output", str(out), "--train", str(files["train"]), paths["train_images"],
            "--val", str(files["val"]), paths["val_images"], "--losses", "bce",
            "--levels", "as_is", "mid", "--seeds", "0", "--max-iter", "4", "--jobs", "2",
            "--refine", "--refine-reference", str(tmp_path / "reference.json"),
            "SOLVER.CHECKPOINT_PERIOD", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # 2 runs of the grid; the arm: 2 folds, then bce and a best loss (none here but bce)
    assert "2 runs (6 to train)" in printed

    folder = out / "refine" / "mid" / "seed0"
    assert sorted(p.name for p in (folder / "audit" / "folds").iterdir()) == ["fold0", "fold1"]
    refined = json.loads((folder / "instances_train_refined.json").read_text())
    noisy = json.loads((out / "dataset" / "instances_train_mid_seed0.json").read_text())
    assert [i["id"] for i in refined["images"]] == [i["id"] for i in noisy["images"]]
    results = json.loads((out / "results.json").read_text())
    assert {(r["level"], r["loss"]) for r in results["records"]} == {
        ("as_is", "bce"), ("mid", "bce"), ("mid_refined", "bce")}
    [record] = results["refinement"]["records"]
    report = json.loads((folder / "instances_train_refined.refine_report.json").read_text())
    assert record["source"] == report["choice"]["source"] and record["how"] == "reference"
    assert record["noisy_iou"] == report["truth"]["none"]["mean_iou"]
    assert 0 < record["noisy_iou"] < 1 and 0 < record["refined_iou"] <= 1
    assert record["audit"]["missing"]["deleted"] == report_deleted(out)
    table = (out / "results.md").read_text()
    assert "## Refinement" in table and "### noise: mid_refined" in table
    assert "| mid_refined | bce |" in table

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/eval_results.json")}
    assert len(stamps) == 3
    assert main(argv) == 0
    assert "to train" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # the copy was made with the default range: asking for another is an error line, exit 2
    assert main([*argv[:-2], "--refine-max-iou", "1", *argv[-2:]]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {folder / 'instances_train_refined.refine_report.json'}: "
                            "this refined copy was made with max_iou 0.8 (asked 1.0)")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def report_deleted(out) -> int:
    report = json.loads((out / "dataset" / "instances_train_mid_seed0.noise_report.json").read_text())
    return sum(r["action"] == "deleted" for r in report["per_instance"])
