#!/usr/bin/env python3
"""Download into `.gpu-wheels/` the wheels that a bare CUDA machine without network needs, beyond
what it has (CPython 3.12, torch, torchvision, numpy, Pillow, OpenCV, pytest), to run
`scripts/gpu_check.sh` there.

Run as `python3 scripts/gpu_wheels.py` (`make gpu-wheels`) where the package registries are
reachable. Each wheel is downloaded for CPython 3.12 on manylinux x86_64 without its
dependencies, so that torch, numpy and Pillow are never pulled: the list below is the whole
closure, checked against the imports of `import noisy_mask`, a training run, the audit and the
tests. detectron2 is the pure-Python wheel that `scripts/setup_env.py` makes. Installs nothing.
Fails if the total exceeds MAX_TOTAL_MIB.
"""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List

try:
    from packaging.requirements import Requirement
except ImportError:  # pip's own copy, where packaging is not installed
    from pip._vendor.packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_env import pure_detectron2_wheel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".gpu-wheels"
MAX_TOTAL_MIB = 40
TARGET = [
    "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux_2_28_x86_64",
]  # fmt: skip
# What imports each, where it is not obvious. No tensorboard: the trainers skip its writer.
REQUIREMENTS = [
    "iopath<0.1.10",  # detectron2 and fvcore
    "yacs",  # detectron2.config (YAML configs)
    "pycocotools",  # detectron2's datasets, noisy_mask.coco
    "faster-coco-eval>=1.6",  # noisy_mask.evaluation
    "shapely>=2.0",  # noisy_mask.noise
    "matplotlib",  # noisy_mask.viz, detectron2's visualizer
    "contourpy",  # matplotlib's dependencies, from here to six
    "cycler",
    "fonttools",
    "kiwisolver",
    "pyparsing",
    "python-dateutil",
    "tzdata",  # python-dateutil 4
    "tqdm",  # fvcore, noisy_mask.engine.progress
    "termcolor",  # detectron2's logger
    "tabulate",  # detectron2's logger and collect_env
    "portalocker",  # iopath
    "pyyaml",  # detectron2.config, noisy_mask.engine.launcher
    "omegaconf<2.4",  # detectron2.config.LazyConfig; hydra-core 1.3 wants < 2.4
    "hydra-core",  # LazyConfig's overrides, detectron2.utils.registry.locate
    "cloudpickle",  # detectron2.utils.serialize, submitit
    "submitit",  # noisy_mask.engine.slurm
    "typing_extensions",  # submitit, iopath
    "packaging",  # matplotlib, hydra
    "setuptools<81",  # pkg_resources, imported by detectron2.model_zoo
]
# On the GPU machine already: the wheels' requirements on these are not checked.
PRESENT = {"torch", "torchvision", "numpy", "pillow", "opencv_python", "opencv_python_headless"}
# Required by detectron2's metadata, left out on purpose.
LEFT_OUT = {
    "tensorboard": "the trainers drop TensorBoard's writer without it (grpcio and all, 20 MB)",
    "black": "only LazyConfig.to_py imports it, to format a config as Python",
}
# Pure Python, but published as source archives only: built here into py3-none-any wheels.
FROM_SOURCE = [
    "fvcore<0.1.6",  # detectron2; newer ones break its checkpointer
    "antlr4-python3-runtime==4.9.*",  # omegaconf and hydra's grammars
]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])


def wheel_metadata(wheel: Path) -> List[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode().splitlines()


def unmet_requirements(wheels: List[Path]) -> List[str]:
    """What the wheels require (on CPython 3.12 on Linux, without extras) that is neither one of
    them, at a version it allows, nor PRESENT: `--no-deps` resolves nothing, so check here."""
    versions: Dict[str, str] = {}
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        versions[normalized(name)] = version
    python = {
        "python_version": "3.12",
        "python_full_version": "3.12.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "implementation_name": "cpython",
        "extra": "",
    }
    unmet = []
    for wheel in wheels:
        for line in wheel_metadata(wheel):
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.split(":", 1)[1].strip())
            if requirement.marker and not requirement.marker.evaluate(python):
                continue
            name = normalized(requirement.name)
            if name in PRESENT or name in LEFT_OUT:
                continue
            if name not in versions or not requirement.specifier.contains(
                versions[name], prereleases=True
            ):
                unmet.append(f"{wheel.name} needs {requirement} (have {versions.get(name)})")
    return unmet


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("[gpu-wheels] $ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    if WHEELS.exists():
        shutil.rmtree(WHEELS)  # no stale versions left beside the new ones
    WHEELS.mkdir()
    pip(
        "download",
        "--only-binary=:all:",
        "--no-deps",
        *TARGET,
        "--dest",
        str(WHEELS),
        *REQUIREMENTS,
    )
    pip("wheel", "--no-deps", "--wheel-dir", str(WHEELS), *FROM_SOURCE)
    shutil.copy2(pure_detectron2_wheel(python=Path(sys.executable)), WHEELS)

    wheels = sorted(WHEELS.glob("*.whl"))
    impure = [
        w.name
        for w in wheels
        if requirement_name(w.name.split("-")[0]) in {requirement_name(r) for r in FROM_SOURCE}
        and not w.name.endswith("-none-any.whl")
    ]
    if impure:
        sys.exit(f"[gpu-wheels] built for this machine only, not pure Python: {impure}")
    got = {normalized(wheel.name.split("-")[0]) for wheel in wheels}
    missing = [r for r in REQUIREMENTS + FROM_SOURCE if requirement_name(r) not in got]
    if missing:
        sys.exit(f"[gpu-wheels] no wheel for {', '.join(missing)}")
    unmet = unmet_requirements(wheels)
    if unmet:
        sys.exit("[gpu-wheels] unmet requirements:\n  " + "\n  ".join(unmet))
    total = 0
    for wheel in wheels:
        size = wheel.stat().st_size
        total += size
        print(f"[gpu-wheels] {size / 2**20:7.2f} MiB  {wheel.name}")
    print(f"[gpu-wheels] {len(wheels)} wheels, {total / 2**20:.2f} MiB in all, in {WHEELS}")
    if total > MAX_TOTAL_MIB * 2**20:
        sys.exit(f"[gpu-wheels] {total / 2**20:.2f} MiB is over the {MAX_TOTAL_MIB} MiB limit")


if __name__ == "__main__":
    main()
