"""The configs shipped inside the package, found as detectron2's `model_zoo` finds its own:

    from noisy_mask import model_zoo
    cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_dice.yaml"))
    lazy = LazyConfig.load(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_dice.py"))

`_BASE_` paths inside them are relative, so they resolve from the installed location; the lazy
`.py` configs build on detectron2's own model zoo (`detectron2.model_zoo.get_config`).
"""
from pathlib import Path
from typing import List

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def get_config_file(config_path: str) -> str:
    """The installed path of `config_path`, relative to noisy_mask/configs/ (for example
    "shapes/Base-Shapes-R18-FPN.yaml"); FileNotFoundError listing the shipped configs otherwise."""
    path = CONFIG_DIR / config_path
    if not path.is_file():
        raise FileNotFoundError(
            f"{config_path!r} is not a config shipped with noisy_mask; available: "
            + ", ".join(list_configs())
        )
    return str(path)


def list_configs() -> List[str]:
    """Every shipped config (YAML and lazy `.py`), relative to noisy_mask/configs/."""
    return sorted(
        str(p.relative_to(CONFIG_DIR))
        for p in CONFIG_DIR.rglob("*")
        if p.suffix in (".yaml", ".py") and p.name != "__init__.py"
    )
