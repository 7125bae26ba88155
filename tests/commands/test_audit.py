"""`python -m noisy_mask.audit --detections`: the files it writes from a hand-made results file, the
line it prints, its errors, and what its modules import."""

import csv
import json
import re

import pytest
from audit_cases import hand_case, write_case
from samples import (
    hand_made_noise,
    heavy,
    modules_loaded_by_import,
    png_size,
    square_result,
    write_json,
)

from noisy_mask.commands.audit import main


@pytest.fixture
def case(tmp_path):
    gt_path, image_dir, results_path = write_case(tmp_path, *hand_case())
    return {"gt": gt_path, "images": image_dir, "results": results_path, "out": tmp_path / "out"}


def run(case, *extra):
    return main(["--annotations", str(case["gt"]), str(case["images"]), "--output",
                 str(case["out"]), "--detections", str(case["results"]), *extra])  # fmt: skip


def test_files_and_line_from_a_results_file(case, capsys):
    assert run(case) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "4 annotations: 1 with no matching prediction, 1 with another class, median mask IoU "
        "1.00; 1 confident prediction without annotation"
    )  # median of the matched 2/3, 1, 1

    audit = json.loads((case["out"] / "audit.json").read_text())
    assert audit["predictions"] == {"source": "detections", "detections": str(case["results"])}
    assert audit["summary"] == {
        "annotations": 4, "unmatched": 1, "other_class": 1, "median_mask_iou": 1.0,
        "missing": 1, "crowd": 0,
    }  # fmt: skip
    rows = audit["annotations"]
    # hand-derived in test_audit_scores: suspicion 1 (missed), 0.6 (flip), 1/3 (2/3 IoU), 0
    assert [(r["rank"], r["id"], r["suspicion"]) for r in rows] == [
        (1, 3, 1.0), (2, 2, 0.6), (3, 1, 0.333333), (4, 4, 0.0),
    ]  # fmt: skip
    flip = rows[1]
    assert (flip["category"], flip["pred_category"], flip["pred_score"]) == ("circle", "star", 0.8)
    assert (flip["class_agrees"], flip["mask_iou"], flip["boundary_iou"]) == (False, 1.0, 1.0)
    assert (rows[2]["mask_iou"], rows[2]["boundary_iou"]) == (0.666667, 0.285714)  # 2/3, 2/7
    assert [r["area"] for r in rows] == [400.0] * 4  # 20 x 20 squares
    assert audit["missing"] == [
        {"rank": 1, "image_id": 2, "file_name": "2.png", "pred_category_id": 2,
         "pred_category": "star", "pred_score": 0.7, "max_iou": 0.0,
         "bbox": [10.0, 40.0, 20.0, 20.0], "area": 400.0, "fold": None},
    ]  # fmt: skip

    with open(case["out"] / "audit.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["kind"], r["rank"], r["id"]) for r in table] == [
        ("annotation", "1", "3"), ("annotation", "2", "2"), ("annotation", "3", "1"),
        ("annotation", "4", "4"), ("missing", "1", ""),
    ]  # fmt: skip
    assert (table[1]["class_agrees"], table[1]["other_class_score"]) == ("false", "0.8")
    assert (table[0]["pred_category"], table[0]["class_agrees"]) == ("", "")
    assert table[4]["bbox"] == "10.0 40.0 20.0 20.0"

    width, height = png_size(case["out"] / "audit_suspects.png")
    assert width > 4 * 200 and height > 200  # four cells of 200 px in a row
    page = (case["out"] / "audit.html").read_text()
    assert page.count('<tr><td data-v="') == 5  # 4 annotations, 1 missing instance
    thumbs = sorted(p.name for p in (case["out"] / "audit_thumbs").iterdir())
    assert thumbs == ["a1.png", "a2.png", "a3.png", "a4.png", "m1.png"]


def test_page_is_offline_and_lazy(case):
    assert run(case, "--num-pictures", "0") == 0
    assert not (case["out"] / "audit_suspects.png").exists()
    page = (case["out"] / "audit.html").read_text()
    assert not re.search(r"(https?:)?//[a-z]", page.replace("data:,", ""))  # no external URL
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == 5
    for tag in images:
        assert 'loading="lazy"' in tag and 'width="' in tag and 'height="' in tag
        source = re.search(r'src="([^"]+)"', tag).group(1)
        assert (case["out"] / source).is_file()


def test_a_second_audit_keeps_the_same_thumbnails_and_drops_stale_ones(case):
    assert run(case) == 0
    thumbs = case["out"] / "audit_thumbs"
    first = {p.name: p.stat().st_mtime_ns for p in thumbs.iterdir()}
    (thumbs / "a99.png").write_bytes(b"")  # an annotation of an earlier file
    (thumbs / "notes.txt").write_text("a user's")
    assert run(case) == 0
    assert {p.name: p.stat().st_mtime_ns for p in thumbs.iterdir() if p.suffix == ".png"} == first
    assert (thumbs / "notes.txt").exists()
    assert [p.name for p in case["out"].rglob(".*")] == []  # no temporary file left


def test_bad_inputs(case, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--annotations", str(tmp_path / "none.json"), str(case["images"]), "--output",
              str(case["out"]), "--detections", str(case["results"])])  # fmt: skip
    assert exit_info.value.code == 2
    assert "annotation file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(case, "--config", str(case["gt"]))
    assert "--config goes with --weights or --folds" in capsys.readouterr().err
    results = json.loads(case["results"].read_text())
    results[3]["image_id"] = 9
    case["results"].write_text(json.dumps(results))
    assert run(case) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {case['results']}: result #3: 'image_id' 9 is not in the annotations"
    )
    assert not case["out"].exists() or not (case["out"] / "audit.json").exists()


def test_the_scores_and_files_import_neither_torch_nor_detectron2():
    # Only the predictions (audit.predict, and audit.run that calls it) need a model.
    for module in ("scores", "report", "pictures", "html", "truth"):
        assert not heavy(modules_loaded_by_import(f"noisy_mask.audit.{module}")), module


def test_scored_against_the_noise_report_or_the_clean_file(tmp_path, capsys):
    """The case of test_audit_scores: the flip outranks the moved square (AUROC 1), whose audited
    IoU 0.6 is its true one. The deleted square 2 (x 40..59, y 10..29) is predicted (0.8) where
    no annotation is: with the clean file, 1 of 1 deleted found among 1 possibly missing."""
    clean, noisy = hand_made_noise()
    results = [square_result(1, 10, 10, 0.9, category_id=1), square_result(1, 40, 40, 0.9, 2),
               square_result(1, 40, 10, 0.8, category_id=1)]
    gt_path, image_dir, results_path = write_case(tmp_path, noisy, results)
    report = write_json(tmp_path / "noisy.noise_report.json", {"per_instance": [
        {"id": 1, "action": "kept", "mask_iou": 0.6},
        {"id": 2, "action": "deleted", "mask_iou": None},
        {"id": 3, "action": "flipped", "mask_iou": 1.0},
    ]})  # fmt: skip
    clean_path = write_json(tmp_path / "clean.json", clean)
    line = (
        "Against the truth: flipped classes AUROC 1.00 (1 of 2; class margin alone 1.00); rank "
        "correlation with the true "
        "IoU: audited mask IoU 1.00, suspicion -1.00 (object size alone n/a)"
    )
    for flag, path in (("--noise-report", report), ("--clean", clean_path)):
        out = tmp_path / flag.strip("-")
        assert main(["--annotations", str(gt_path), str(image_dir), "--output", str(out),
                     "--detections", str(results_path), flag, str(path)]) == 0  # fmt: skip
        missing = ("; deleted instances: 1 of 1 among the 1 possibly missing, 100% at 50% "
                   "precision") if flag == "--clean" else ""
        assert capsys.readouterr().out.splitlines()[1] == line + missing
        truth = json.loads((out / "audit.json").read_text())["truth"]
        assert (truth["flip_auroc"], truth["iou_spearman"]) == (1.0, 1.0)
