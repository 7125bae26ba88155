"""The files train_net leaves in a run folder (OUTPUT_DIR), where to find them, and run labels."""

import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

EVAL_RESULTS_FILE = "eval_results.json"  # the final metrics, {"segm": {"AP": ...}, ...}
DETECTIONS_FILE = "coco_instances_results.json"  # a COCO results file, per evaluated dataset
METRICS_FILE = "metrics.json"  # detectron2's per-iteration scalars, one JSON object a line


def find_run_file(
    run_dir: Union[str, os.PathLike], file_name: str, what: str, dataset: Optional[str] = None
) -> Path:
    """The path of `file_name` in `run_dir`: in the folder itself or inference/, else in
    inference/<dataset>/ (train_net's evaluation folder; `dataset` picks one of several).

    Raises FileNotFoundError naming the folder, the file and `what` it holds when it is missing,
    and ValueError when several datasets have one and `dataset` is not given.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist")
    own = [f for f in (run_dir, run_dir / "inference") if (f / file_name).is_file()]
    if dataset is None and own:
        return own[0] / file_name  # a folder's own file comes first
    found = sorted(p.parent for p in run_dir.glob(f"inference/*/{file_name}"))
    if dataset is not None:
        found = [p for p in found if p.name == dataset]
    if len(found) == 1:
        return found[0] / file_name
    if len(found) > 1:
        raise ValueError(
            f"run folder {str(run_dir)!r} has {what} for several datasets"
            f" ({', '.join(p.name for p in found)}); choose one with --dataset"
        )
    where = f"inference/{dataset}" if dataset else "inference/<dataset>"
    raise FileNotFoundError(
        f"run folder {str(run_dir)!r} has no {what}: missing {file_name} (looked in"
        f" {'' if dataset else 'the folder, inference/ and '}{where}/); evaluate the run with"
        " train_net.py first"
    )


def default_labels(run_dirs: Sequence[Union[str, os.PathLike]]) -> List[str]:
    """Run labels: the folder names, or the paths as given where two folders share a name."""
    names = [Path(d).resolve().name for d in run_dirs]
    return [n if names.count(n) == 1 else os.fspath(d) for n, d in zip(names, run_dirs)]
