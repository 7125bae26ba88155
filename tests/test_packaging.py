"""The package as users install it: the wheel outside the checkout, and quiet commands."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from noisy_mask import model_zoo
from noisy_mask.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
# The `python -m noisy_mask.X` doors of the commands the README teaches.
TOOLS = ("noise", "validate", "plot", "visualize", "train_net", "robustness", "audit", "refine",
         "data.shapes")


def package_files(package_dir: Path):
    """Every file of the package, relative to its parent, but compiled ones."""
    return {
        str(path.relative_to(package_dir.parent))
        for path in package_dir.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the sources, installed alone into site/; work/ is empty."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # A copy, so that no build/ folder of an earlier build lends the wheel stale files.
    shutil.copytree(
        ROOT / "noisy_mask", src / "noisy_mask", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp / "dist")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp / "dist").glob("noisy_mask-*.whl")
    site = tmp / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)  # the venv's torch and detectron2, the wheel's noisy_mask
    return {"src": src, "wheel": wheel, "site": site, "work": work, "env": env}


def run_installed(installed, *args, timeout=300):
    result = subprocess.run(
        [sys.executable, *args],
        cwd=installed["work"],
        env=installed["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_config(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        in_wheel = {name for name in wheel.namelist() if name.startswith("noisy_mask/")}
    sources = package_files(installed["src"] / "noisy_mask")
    assert in_wheel == sources
    for config in model_zoo.list_configs():
        assert f"noisy_mask/configs/{config}" in in_wheel


CHECK_CONFIGS = """
import json, noisy_mask
from detectron2.config import LazyConfig, get_cfg
from noisy_mask import model_zoo

out = {"noisy_mask": noisy_mask.__file__, "configs": {}}
for name in model_zoo.list_configs():
    path = model_zoo.get_config_file(name)
    if name.endswith(".py"):
        head = LazyConfig.load(path).model.roi_heads.mask_head
        head_name, loss = head._target_.__name__, head.loss_name
        out["configs"][name] = {"path": path, "head": head_name, "loss": loss}
        continue
    cfg = get_cfg()
    noisy_mask.add_noisy_mask_config(cfg)
    cfg.merge_from_file(path)
    out["configs"][name] = {
        "path": path,
        "head": cfg.MODEL.ROI_MASK_HEAD.NAME,
        "loss": cfg.MODEL.ROI_MASK_HEAD.LOSS,
        "classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        "depth": cfg.MODEL.RESNETS.DEPTH,
    }
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_installed_package_finds_its_configs_and_their_bases(installed):
    site = installed["site"]
    found = json.loads(run_installed(installed, "-c", CHECK_CONFIGS).stdout.splitlines()[-1])
    assert Path(found["noisy_mask"]) == site / "noisy_mask" / "__init__.py"
    assert sorted(found["configs"]) == model_zoo.list_configs()
    for name, config in found["configs"].items():
        assert Path(config["path"]) == site / "noisy_mask" / "configs" / name
        assert config["head"] == "NoisyMaskRCNNConvUpsampleHead", name
        for loss in ("bce", "dice", "label_smoothing"):
            if Path(name).stem.endswith(f"_{loss}"):
                assert config["loss"] == loss, name
    # _BASE_ chains resolved from site/: shapes/*_dice.yaml -> Base-Shapes-R18-FPN.yaml (classes,
    # depth) -> ../Base-NoisyMask-RCNN-FPN.yaml (the head), two folders up the installed tree.
    shapes_dice = found["configs"]["shapes/mask_rcnn_R18_FPN_shapes_dice.yaml"]
    assert (shapes_dice["classes"], shapes_dice["depth"]) == (4, 18)
    coco_dice = found["configs"]["COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_dice.yaml"]
    assert (coco_dice["classes"], coco_dice["depth"]) == (80, 50)


@pytest.mark.slow
def test_train_net_from_the_wheel_trains_and_evaluates(installed, tmp_path):
    data = tmp_path / "shapes"
    run_installed(
        installed, "-m", "noisy_mask.data.shapes", "--output", str(data),
        "--num-train", "4", "--num-val", "2", "--image-size", "128", "--seed", "1",
    )  # fmt: skip
    config = installed["site"] / "noisy_mask/configs/shapes/mask_rcnn_R18_FPN_shapes_dice.yaml"
    output = tmp_path / "run"
    result = run_installed(
        installed, "-m", "noisy_mask.train_net", "--config-file", str(config),
        "--register-coco", "tiny_train", str(data / "annotations/instances_train.json"),
        str(data / "train"),
        "--register-coco", "tiny_val", str(data / "annotations/instances_val.json"),
        str(data / "val"),
        "DATASETS.REGISTER_COCO", "[]", "DATASETS.TRAIN", "('tiny_train',)",
        "DATASETS.TEST", "('tiny_val',)", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
        "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MIN_SIZE_TEST", "128",
        "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(output),
        timeout=600,
    )  # fmt: skip
    assert f"Contents of args.config_file={config}" in result.stdout + result.stderr
    results = json.loads((output / "eval_results.json").read_text())
    for task in ("bbox", "segm", "boundary"):
        assert 0.0 <= results[task]["AP"] <= 100.0
    metrics = [json.loads(line) for line in (output / "metrics.json").open()]
    assert [m["iteration"] for m in metrics if "loss_mask" in m] == [1]
    assert "LOSS: dice" in (output / "config.yaml").read_text()


@pytest.mark.slow
def test_the_console_script_runs_from_the_wheel(installed):
    script = installed["site"] / "bin" / "noisy-mask"
    listing = subprocess.run([str(script), "--help"], cwd=installed["work"], env=installed["env"],
                             capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stderr
    words = " ".join(listing.stdout.split())  # the purposes are wrapped at 100 columns
    for command, purpose in COMMANDS.items():
        assert f" {command} {' '.join(purpose.split())}" in words, command
    demo = subprocess.run([str(script), "demo", "--help"], cwd=installed["work"],
                          env=installed["env"], capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.startswith("usage: noisy-mask demo") and "--output" in demo.stdout


def test_get_config_file_lists_the_shipped_configs_when_one_is_missing():
    assert "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_dice.py" in model_zoo.list_configs()
    with pytest.raises(FileNotFoundError, match=r"'shapes/nope.yaml' .* shapes/Base-Shapes"):
        model_zoo.get_config_file("shapes/nope.yaml")


@pytest.fixture(scope="module")
def tool_help():
    """stderr of `python -m noisy_mask.TOOL --help` for each tool, all started at once."""
    procs = {
        tool: subprocess.Popen(
            [sys.executable, "-m", f"noisy_mask.{tool}", "--help"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tool in TOOLS
    }
    results = {}
    for tool, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[tool] = (proc.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize("tool", TOOLS)
def test_commands_print_no_warning(tool_help, tool):
    returncode, stdout, stderr = tool_help[tool]
    assert returncode == 0, stderr
    assert stdout.startswith("usage:")
    assert [line for line in stderr.splitlines() if "Warning" in line] == []


def test_import_silences_torch_fx_tracing_notice_and_nothing_else():
    # detectron2's ROIPooler calls torch.fx's is_fx_tracing, which logs a notice about torch's
    # own API once per process; after `import noisy_mask` it is dropped, other warnings are not.
    call = "from torch.fx._symbolic_trace import is_fx_tracing; is_fx_tracing()\n"
    other = "import logging; logging.getLogger('torch.fx._symbolic_trace').warning('other')\n"
    runs = {name: subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                 text=True, timeout=300)
            for name, code in (("plain", call), ("ours", "import noisy_mask\n" + call + other))}
    assert "is_fx_tracing will return true" in runs["plain"].stderr
    assert "is_fx_tracing" not in runs["ours"].stderr
    lines = runs["ours"].stderr.strip().splitlines()  # torch's format: "W... <string>:3] other"
    assert len(lines) == 1 and lines[0].endswith("] other")


def test_import_silences_only_torchs_script_deprecation():
    # The filter is scoped to noisy_mask's imports: the same warning raised afterwards shows.
    code = (
        "import warnings, noisy_mask\n"
        "warnings.warn('`torch.jit.script` is deprecated. Please switch', FutureWarning)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    warning_lines = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(warning_lines) == 1 and "<string>:2: FutureWarning" in warning_lines[0]
