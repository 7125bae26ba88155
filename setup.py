"""noisy-mask: a Detectron2 mask head whose loss is chosen in the config, for noisy masks.

detectron2 is not on PyPI and is not required here: install it first (see the README).
torch is asked for unpinned, so an existing torch and detectron2 are never replaced.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
README = HERE / "README.md"
# Every config under noisy_mask/configs/, at any depth (noisy_mask.model_zoo.list_configs finds
# the same files); listed here rather than globbed so that older setuptools ship them too.
CONFIGS = sorted(
    str(path.relative_to(HERE / "noisy_mask"))
    for path in (HERE / "noisy_mask" / "configs").rglob("*")
    if path.suffix in (".yaml", ".py") and "__pycache__" not in path.parts
)

setup(
    name="noisy-mask",
    version="0.1.0",
    description="Noise-robust mask losses for Detectron2's Mask R-CNN, and the experiment around them",
    long_description=README.read_text() if README.exists() else "",
    long_description_content_type="text/markdown",
    # torch 2.14.1, which the set-up installs, requires Python >= 3.10.
    python_requires=">=3.10",
    packages=find_packages(include=["noisy_mask", "noisy_mask.*"]),
    # The configs ship inside the package (noisy_mask.model_zoo.get_config_file finds them).
    package_data={"noisy_mask": CONFIGS},
    install_requires=[
        "torch>=2.0",
        "fvcore",
        "pycocotools>=2.0.2",
        "opencv-python-headless",
        "faster-coco-eval>=1.6",
        "matplotlib",
        "numpy",
        "Pillow",
        "tqdm",
        "shapely>=2.0",
        # --executor slurm: each run a Slurm job (pure Python; no Slurm needed to install it).
        "submitit>=1.5",
    ],
    extras_require={"test": ["pytest>=7", "selenium"]},
    # Every command behind one door: `noisy-mask COMMAND` (noisy_mask.commands).
    entry_points={"console_scripts": ["noisy-mask = noisy_mask.commands:main"]},
)
