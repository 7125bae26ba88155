"""Reliability of training runs: atomic checkpoints, resuming after SIGKILL, non-finite losses
named with their iteration, the registered datasets checked before any model is built, and one
run at a time in an output folder."""

import itertools
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from noisy_mask.engine.checkpoint import AtomicCheckpointer
from noisy_mask.data import generate_shapes_dataset
from noisy_mask.config import add_dataset_checks_config
from noisy_mask.data.checks import DatasetProblemsError, check_registered_datasets
from noisy_mask.data.register import register_coco_datasets
from noisy_mask.engine.divergence import (
    ADVICE,
    LAZY_ADVICE,
    CheckedSimpleTrainer,
    NonFiniteLossError,
    TrainingDivergedError,
    non_finite_loss_message,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "shapes" / "mask_rcnn_R18_FPN_shapes_dice.yaml"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return generate_shapes_dataset(
        tmp_path_factory.mktemp("shapes"), num_train=8, num_val=2, seed=0
    )


# ---------------------------------------------------------------------------------------------
# Atomic checkpoints


PARTIAL = b"PK\x03\x04 the first bytes of a zip archive"  # what torch.save wrote before failing


def tiny_checkpointer(folder, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, AtomicCheckpointer(model, str(folder), optimizer=optimizer)


def test_save_renames_the_checkpoint_into_place_before_tagging_it(tmp_path, monkeypatch):
    model, checkpointer = tiny_checkpointer(tmp_path)
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda a, b: (renamed.append(Path(b).name), real_replace(a, b))
    )
    checkpointer.save("model_0000004", iteration=4)
    # The checkpoint reaches its name complete, and only then does the tag name it.
    assert renamed == ["model_0000004.pth", "last_checkpoint"]
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000004.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    data = torch.load(tmp_path / "model_0000004.pth", weights_only=False)
    assert data["iteration"] == 4 and set(data) == {"model", "optimizer", "iteration"}
    torch.testing.assert_close(data["model"]["weight"], model.weight.detach())


def test_an_interrupted_save_leaves_the_previous_checkpoint_and_tag(tmp_path, monkeypatch):
    model, checkpointer = tiny_checkpointer(tmp_path)
    saved_weight = model.weight.detach().clone()
    checkpointer.save("model_0000004", iteration=4)
    with torch.no_grad():
        model.weight.add_(1.0)

    def save_half_then_fail(obj, f, *args, **kwargs):
        f.write(PARTIAL)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        checkpointer.save("model_0000009", iteration=9)
    # No partial file under the final name, no temporary file left, the tag unchanged.
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000004.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    monkeypatch.undo()
    fresh, resumer = tiny_checkpointer(tmp_path, seed=1)
    assert resumer.resume_or_load("", resume=True)["iteration"] == 4
    torch.testing.assert_close(fresh.weight.detach(), saved_weight)

    # Reference: detectron2's own checkpointer leaves the truncated file under the final name.
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain = DetectionCheckpointer(model, str(plain_dir))
    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError):
        plain.save("model_0000009", iteration=9)
    assert (plain_dir / "model_0000009.pth").read_bytes() == PARTIAL


def test_an_interrupted_tag_write_leaves_the_previous_tag(tmp_path, monkeypatch):
    _, checkpointer = tiny_checkpointer(tmp_path)
    checkpointer.save("model_0000004", iteration=4)
    real_replace = os.replace

    def replace_but_not_the_tag(src, dst):
        if Path(dst).name == "last_checkpoint":
            raise KeyboardInterrupt  # the user presses Ctrl-C between the two renames
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_but_not_the_tag)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_0000009", iteration=9)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    assert sorted(os.listdir(tmp_path)) == [
        "last_checkpoint",
        "model_0000004.pth",
        "model_0000009.pth",
    ]


def test_stale_temporary_files_of_killed_saves_are_removed(tmp_path):
    names = [
        ".model_0000009.pth.k2j3h_4g.tmp",  # a checkpoint being written when the run was killed
        ".last_checkpoint.ab_cdefg.tmp",  # the tag being written
        ".eval_results.json.abcdefgh.tmp",  # not a checkpoint: left alone
        "model_0000004.pth",
        "last_checkpoint",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    _, checkpointer = tiny_checkpointer(tmp_path)
    removed = checkpointer.remove_stale_temp_files()
    assert [p.name for p in removed] == [".last_checkpoint.ab_cdefg.tmp", names[0]]
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])


# ---------------------------------------------------------------------------------------------
# Non-finite losses


def test_non_finite_loss_message():
    losses = {"loss_cls": 0.5, "loss_mask": math.nan, "loss_box_reg": math.inf}
    assert non_finite_loss_message(losses, 12) == (
        "loss_mask is nan and loss_box_reg is inf at iteration 12; other terms: loss_cls=0.5. "
        f"Training stopped: {ADVICE}"
    )
    # Multi-process: detectron2 checks the mean over processes; this one may be all finite.
    detail = "Loss became infinite or NaN at iteration=3!\nloss_dict = {'loss_cls': nan}"
    assert non_finite_loss_message({"loss_cls": 0.25}, 3, detail) == (
        "the loss is non-finite at iteration 3 in another process; in this one every term is "
        "finite: loss_cls=0.25 (Loss became infinite or NaN at iteration=3! loss_dict = "
        f"{{'loss_cls': nan}}). Training stopped: {ADVICE}"
    )


class LogLoss(nn.Module):
    """loss_log = log(w), loss_sq = (v - 1)^2, from w = 1, v = 0.

    SGD with lr 0.5: w <- w - 0.5 / w gives w = 1, 0.5, -0.5, so loss_log = 0, -0.6931, nan
    (iteration 2); v <- v - (v - 1) gives v = 0, 1, 1, so loss_sq = 1, 0, 0.
    """

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))
        self.v = nn.Parameter(torch.tensor(0.0))

    def forward(self, batch):
        return {"loss_log": torch.log(self.w), "loss_sq": (self.v - 1) ** 2}


def test_the_trainer_names_the_nan_term_and_its_iteration():
    model = LogLoss().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    trainer = CheckedSimpleTrainer(model, itertools.repeat(None), optimizer)
    with pytest.raises(NonFiniteLossError) as error:
        trainer.train(0, 10)
    assert str(error.value) == (
        f"loss_log is nan at iteration 2; other terms: loss_sq=0. Training stopped: {ADVICE}"
    )
    assert isinstance(error.value, FloatingPointError)  # callers catching detectron2's still do
    assert "at iteration=2!" in str(error.value.__cause__)  # detectron2's check, the same step
    assert trainer.iter == 2 and model.w.item() == pytest.approx(-0.5)


class DivergedRPN(nn.Module):
    """Raises what detectron2's RPN raises on non-finite predictions, at its third call."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))
        self.calls = 0

    def forward(self, batch):
        self.calls += 1
        if self.calls == 3:
            raise FloatingPointError(
                "Predicted boxes or scores contain Inf/NaN. Training has diverged."
            )
        return {"loss": self.w**2}


def test_divergence_outside_the_loss_names_the_iteration():
    model = DivergedRPN().train()
    trainer = CheckedSimpleTrainer(
        model, itertools.repeat(None), torch.optim.SGD(model.parameters(), lr=0.1)
    )
    with pytest.raises(TrainingDivergedError) as error:
        trainer.train(0, 10)
    assert str(error.value) == (
        "training diverged at iteration 2: Predicted boxes or scores contain Inf/NaN. Training has "
        f"diverged. Training stopped: {ADVICE}"
    )


def test_a_lazy_run_is_advised_in_lazy_keys():
    losses = {"loss_mask": math.inf, "loss_cls": 0.5}
    assert non_finite_loss_message(losses, 0, advice=LAZY_ADVICE) == (
        "loss_mask is inf at iteration 0; other terms: loss_cls=0.5. Training stopped: lower "
        "optimizer.lr or lengthen lr_multiplier.warmup_length (the warmup's share of training, "
        "in [0, 1])"
    )
    # The trainers of a lazy run end both of their messages with it.
    ends_with_advice = re.escape(f"Training stopped: {LAZY_ADVICE}") + "$"
    for model, error in ((LogLoss(), NonFiniteLossError), (DivergedRPN(), TrainingDivergedError)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        trainer = CheckedSimpleTrainer(
            model.train(), itertools.repeat(None), optimizer, advice=LAZY_ADVICE
        )
        with pytest.raises(error, match=ends_with_advice):
            trainer.train(0, 10)
    assert "SOLVER" not in LAZY_ADVICE


# ---------------------------------------------------------------------------------------------
# Dataset checks before training


def write_json(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def checks_cfg(entries, train, test=(), **keys):
    cfg = get_cfg()
    add_dataset_checks_config(cfg)
    cfg.DATASETS.REGISTER_COCO = entries
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = tuple(train), tuple(test)
    for key, value in keys.items():
        cfg.DATASETS[key] = value
    register_coco_datasets(entries)
    return cfg


@pytest.fixture
def degenerate(shapes, tmp_path, request):
    """The shapes train json with annotation 0 empty, annotation 1 of zero width (both
    skippable) and annotation 2 of an unknown category (fatal); a fresh dataset name."""
    data = json.loads(Path(shapes["train_json"]).read_text())
    a0, a1, a2 = data["annotations"][:3]
    a0["segmentation"] = []
    a1["bbox"][2] = 0
    a2["category_id"] = 99
    path = write_json(tmp_path / "instances_train.json", data)
    name = f"degenerate_{request.node.name}"
    return name, path, data, (a0, a1, a2)


def test_every_problem_is_listed_and_stops_the_run(shapes, degenerate):
    name, path, _, (a0, a1, a2) = degenerate
    cfg = checks_cfg([[name, path, shapes["train_images"]]], train=[name])
    with pytest.raises(DatasetProblemsError) as error:
        check_registered_datasets(cfg)
    assert str(error.value).splitlines() == [
        "3 problems in DATASETS.REGISTER_COCO; the 2 marked [skippable] can be dropped from "
        "training with DATASETS.SKIP_DEGENERATE_ANNOTATIONS True (check a dataset with "
        "`python -m noisy_mask.validate JSON IMAGE_DIR`):",
        f"dataset '{name}' ({path}): 3 problems",
        f"  instances_train.json: annotation {a0['id']} (image {a0['image_id']}): segmentation is "
        "empty [skippable]",
        f"  instances_train.json: annotation {a1['id']} (image {a1['image_id']}): box "
        f"{json.dumps(a1['bbox'])} has non-positive width or height [skippable]",
        f"  instances_train.json: annotation {a2['id']} (image {a2['image_id']}): category_id 99 "
        "is not in 'categories'",
    ]


def test_skippable_annotations_are_dropped_only_when_asked(shapes, degenerate, tmp_path, caplog):
    name, path, data, (a0, a1, a2) = degenerate
    a2["category_id"] = a0["category_id"]  # only the two skippable problems left
    write_json(Path(path), data)
    cfg = checks_cfg(
        [[name, path, shapes["train_images"]]], train=[name], SKIP_DEGENERATE_ANNOTATIONS=True
    )
    with caplog.at_level(logging.WARNING, logger="noisy_mask"):
        assert check_registered_datasets(cfg) == {name: {a0["id"], a1["id"]}}
    assert f"dropping 2 annotations of '{name}' ({path}) from training, ids " in caplog.text
    assert f"ids {sorted([a0['id'], a1['id']])}" in caplog.text
    # Reference: detectron2's loader on the json without the two annotations.
    pruned = dict(data, annotations=data["annotations"][2:])
    pruned_json = write_json(tmp_path / "pruned.json", pruned)
    expected = load_coco_json(pruned_json, shapes["train_images"], dataset_name=name + "_reference")
    assert DatasetCatalog.get(name) == expected
    assert sum(len(r["annotations"]) for r in expected) == len(data["annotations"]) - 2
    # Evaluation reads the json itself, unfiltered.
    assert MetadataCatalog.get(name).json_file == path


def test_nothing_is_dropped_from_a_dataset_that_is_evaluated_or_fatally_wrong(shapes, degenerate):
    name, path, _, (a0, a1, a2) = degenerate
    cfg = checks_cfg(
        [[name, path, shapes["train_images"]]], train=[name], SKIP_DEGENERATE_ANNOTATIONS=True
    )
    with pytest.raises(DatasetProblemsError) as error:  # annotation 2 is fatal: the run stops
        check_registered_datasets(cfg)
    lines = str(error.value).splitlines()
    assert lines[0].startswith("1 problem in DATASETS.REGISTER_COCO (check")
    assert lines[1:] == [
        f"dataset '{name}' ({path}): 1 problem",
        f"  instances_train.json: annotation {a2['id']} (image {a2['image_id']}): category_id 99 "
        "is not in 'categories'",
    ]
    # A dataset of DATASETS.TEST: the evaluator would read the empty segmentation.
    test_name = name + "_as_test"
    cfg = checks_cfg(
        [[test_name, path, shapes["train_images"]]],
        train=[],
        test=[test_name],
        SKIP_DEGENERATE_ANNOTATIONS=True,
    )
    with pytest.raises(DatasetProblemsError) as error:
        check_registered_datasets(cfg)
    assert (
        f"dataset '{test_name}' ({path}): 3 problems (in DATASETS.TEST: evaluation reads this json "
        "as it is, none dropped)"
    ) in str(error.value)


def test_images_are_decoded_only_when_asked(shapes, tmp_path):
    images = tmp_path / "val"
    images.mkdir()
    data = json.loads(Path(shapes["val_json"]).read_text())
    for image in data["images"]:
        (images / image["file_name"]).write_bytes(
            (Path(shapes["val_images"]) / image["file_name"]).read_bytes()
        )
    broken = data["images"][1]
    whole = (images / broken["file_name"]).read_bytes()
    (images / broken["file_name"]).write_bytes(whole[: len(whole) // 2])  # a truncated copy
    entries = [["truncated_val", shapes["val_json"], str(images)]]
    assert check_registered_datasets(checks_cfg(entries, train=[], test=["truncated_val"])) == {}
    cfg = checks_cfg(entries, train=[], test=["truncated_val"], VALIDATE_IMAGES=True)
    with pytest.raises(DatasetProblemsError, match="1 problem in DATASETS.REGISTER_COCO") as error:
        check_registered_datasets(cfg)
    assert f"  {broken['file_name']}: image {broken['id']}: cannot be decoded: " in str(error.value)


def test_skipping_needs_validation(shapes):
    entries = [["shapes_val_unchecked", shapes["val_json"], shapes["val_images"]]]
    assert check_registered_datasets(checks_cfg(entries, train=[], VALIDATE=False)) == {}
    cfg = checks_cfg(entries, train=[], VALIDATE=False, SKIP_DEGENERATE_ANNOTATIONS=True)
    with pytest.raises(ValueError, match="need DATASETS.VALIDATE True"):
        check_registered_datasets(cfg)


# ---------------------------------------------------------------------------------------------
# train_net.py end to end


def train_net_command(shapes, output_dir, *args, opts=(), train_json=None):
    datasets = [["rel_train", train_json or shapes["train_json"], shapes["train_images"]]]
    return [
        sys.executable, str(ROOT / "train_net.py"), "--config-file", str(CONFIG), *args,
        "DATASETS.REGISTER_COCO", repr(datasets), "DATASETS.TRAIN", "('rel_train',)",
        "DATASETS.TEST", "()", "OUTPUT_DIR", str(output_dir), "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.WARMUP_ITERS", "5", "SOLVER.STEPS", "()", "INPUT.MIN_SIZE_TRAIN", "(64,)",
        "INPUT.MAX_SIZE_TRAIN", "96", *opts,
    ]  # fmt: skip


# One thread per process: on a shared CPU, two OpenMP threads spinning against other jobs make
# each iteration several times slower.
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run(cmd, timeout=300):
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=ENV)
    return result.returncode, result.stdout + result.stderr


def tagged_iteration(output_dir):
    """The iteration of the checkpoint `last_checkpoint` names (model_0000009.pth: 9), or None."""
    try:
        tag = (output_dir / "last_checkpoint").read_text()
    except FileNotFoundError:
        return None
    match = re.fullmatch(r"model_(\d{7})\.pth", tag)
    return int(match[1]) if match else None


def children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def is_gone(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie has exited; only its parent's wait() is missing


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(shapes, tmp_path):
    output_dir = tmp_path / "run"
    opts = ["SOLVER.MAX_ITER", "30", "SOLVER.CHECKPOINT_PERIOD", "5"]
    cmd = train_net_command(shapes, output_dir, opts=opts)
    log = open(tmp_path / "killed.log", "w")
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    # Kill after 10 iterations (model_0000009.pth tagged), during a save if one is seen within
    # the next checkpoint period: the harshest moment for the checkpoint files.
    try:
        deadline, first_tag = time.monotonic() + 300, None
        while True:
            assert process.poll() is None, (
                "finished before it was killed:\n" + (tmp_path / "killed.log").read_text()[-3000:]
            )
            assert time.monotonic() < deadline, "no checkpoint at iteration 9 or later in 300 s"
            tag = tagged_iteration(output_dir)
            if tag is not None and tag >= 9:
                first_tag = tag if first_tag is None else first_tag
                saving = list(output_dir.glob(".model_*.pth.*.tmp"))
                if saving or tag >= first_tag + 5:
                    break
            time.sleep(0.005)
        workers = children(process.pid)  # the data loader's worker process
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    # The process is gone, and so are its data loader workers (they watch their parent).
    assert is_gone(process.pid)
    assert workers, "the run had no data loader worker"
    end = time.monotonic() + 30
    while not all(is_gone(pid) for pid in workers) and time.monotonic() < end:
        time.sleep(0.2)
    assert all(is_gone(pid) for pid in workers)

    # Whatever the moment of the kill, the tag names a complete checkpoint of its iteration.
    tag = tagged_iteration(output_dir)
    assert 9 <= tag < 29
    checkpoint = torch.load(output_dir / f"model_{tag:07d}.pth", weights_only=False)
    assert checkpoint["iteration"] == tag
    for path in output_dir.glob("model_*.pth"):  # no truncated file under a final name
        assert torch.load(path, weights_only=False)["iteration"] == int(path.stem[6:])
    temporary = list(output_dir.glob(".*.tmp"))
    # Killed during a save (the usual case): the partial data is under its temporary name only.
    for path in saving:
        final = output_dir / path.name[1:].split(".pth.")[0]
        final = final.with_name(final.name + ".pth")
        print(f"killed after the save of iteration {tag}, during the save of {final.name}")
        if path.exists():  # killed before the rename
            assert not final.exists() and tag < int(final.stem[6:])
        else:  # renamed just before the kill
            assert final.exists()

    returncode, resumed = run(train_net_command(shapes, output_dir, "--resume", opts=opts))
    assert returncode == 0, resumed[-5000:]
    assert f"Starting training from iteration {tag + 1}" in resumed
    for path in temporary:  # a save cut short is cleaned up when the next run starts
        assert f"Removed {path}, left by an interrupted save" in resumed
        assert not path.exists()
    records = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss_mask" in r][-1] == 29
    final = torch.load(output_dir / "model_final.pth", weights_only=False)
    assert final["iteration"] == 29
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_naming_the_term_and_iteration(shapes, tmp_path):
    # LOSS_WEIGHT 1e39 is a finite float64 in the config, but the mask loss is float32, whose
    # largest value is 3.4e38: loss_mask is inf from the first iteration, the other terms finite.
    cmd = train_net_command(
        shapes, tmp_path, opts=["SOLVER.MAX_ITER", "5", "MODEL.ROI_MASK_HEAD.LOSS_WEIGHT", "1e39"]
    )
    returncode, log = run(cmd)
    assert returncode != 0
    match = re.search(
        r"NonFiniteLossError: (\S+) is (\S+) at iteration (\d+); other terms: (.*)\. "
        r"Training stopped",
        log,
    )
    assert match, log[-3000:]
    term, value, iteration, others = match.groups()
    assert (term, value, iteration) == ("loss_mask", "inf", "0")
    # Reference: detectron2's own message, further up in the same log, has every term.
    reference = re.search(r"at iteration=(\d+)!\nloss_dict = \{(.*)\}", log)
    assert reference[1] == iteration
    terms = {k: float(v) for k, v in re.findall(r"'(\w+)': ([^,]+)", reference[2])}
    assert set(terms) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    assert terms["loss_mask"] == math.inf
    assert others == ", ".join(f"{k}={v:.4g}" for k, v in terms.items() if k != "loss_mask")


@pytest.mark.slow
def test_a_diverging_run_stops_naming_the_iteration(shapes, tmp_path):
    # BASE_LR 1e6 without warmup: the weights blow up after the first steps, and the RPN finds
    # non-finite predictions before any loss is non-finite.
    opts = ["SOLVER.MAX_ITER", "10", "SOLVER.BASE_LR", "1e6", "SOLVER.WARMUP_ITERS", "0"]
    returncode, log = run(train_net_command(shapes, tmp_path, opts=opts))
    assert returncode != 0
    match = re.search(r"TrainingDivergedError: training diverged at iteration (\d+): (.*)", log)
    assert match, log[-3000:]
    assert 1 <= int(match[1]) < 10
    assert match[2] == (
        "Predicted boxes or scores contain Inf/NaN. Training has diverged. "
        f"Training stopped: {ADVICE}"
    )


@pytest.mark.slow
def test_a_bad_dataset_stops_train_net_before_any_model_is_built(shapes, degenerate, tmp_path):
    _, path, _, (a0, a1, a2) = degenerate
    cmd = train_net_command(
        shapes, tmp_path / "out", opts=["SOLVER.MAX_ITER", "5"], train_json=path
    )
    returncode, log = run(cmd)
    assert returncode != 0
    assert "DatasetProblemsError: 3 problems in DATASETS.REGISTER_COCO" in log
    assert (
        f"  instances_train.json: annotation {a2['id']} (image {a2['image_id']}): category_id 99 "
        "is not in 'categories'"
    ) in log
    assert "Model:" not in log and "Starting training" not in log


@pytest.mark.slow
def test_a_second_run_into_a_held_output_dir_is_refused_until_the_first_is_killed(shapes, tmp_path):
    output_dir = tmp_path / "run"
    opts = ["SOLVER.MAX_ITER", "1000", "SOLVER.CHECKPOINT_PERIOD", "3"]
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(
        train_net_command(shapes, output_dir, opts=opts),
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=ENV,
    )  # fmt: skip
    refused = (
        f"OutputDirInUseError: OUTPUT_DIR {output_dir} is in use by another run (pid {first.pid} "
        f"on host {socket.gethostname()}, since "
    )
    try:
        deadline = time.monotonic() + 300
        while tagged_iteration(output_dir) is None:  # training, and past its first checkpoint
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint in 300 s"
            time.sleep(0.2)
        checkpoint = str(output_dir / f"model_{tagged_iteration(output_dir):07d}.pth")
        # A training run, an evaluation and a run of two processes, into the same folder.
        for args in ([], ["--eval-only", "MODEL.WEIGHTS", checkpoint], ["--num-gpus", "2"]):
            start = time.monotonic()
            returncode, second = run(train_net_command(shapes, output_dir, *args, opts=opts))
            print(f"{' '.join(args) or 'training'} refused in {time.monotonic() - start:.1f} s")
            assert returncode != 0
            assert refused in second, second[-3000:]
            assert "Model:" not in second and "Starting training" not in second
            assert time.monotonic() - start < 120
        assert first.poll() is None  # the first run went on
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
    # Straight after the kill (its data loader workers may still be winding down), a new run
    # takes the folder.
    tag = tagged_iteration(output_dir)
    opts = ["SOLVER.MAX_ITER", str(tag + 3), "SOLVER.CHECKPOINT_PERIOD", "3"]
    returncode, resumed = run(train_net_command(shapes, output_dir, "--resume", opts=opts))
    assert returncode == 0, resumed[-5000:]
    assert f"Starting training from iteration {tag + 1}" in resumed
    assert (output_dir / "model_final.pth").is_file()
