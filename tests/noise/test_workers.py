"""The noise run on each instance in this process or in forked workers: an unexpected error names
the file and the annotation, and workers start after OpenCV ran threaded in the parent."""

import os
import subprocess
import sys

import pytest
from samples import SQUARE, coco_of, shapes_coco, shifted, write_json

from noisy_mask.coco.io import AnnotationError
from noisy_mask.noise import workers as noise_workers
from noisy_mask.noise.apply import noise_file


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unexpected_error_on_an_instance_names_the_file_and_the_annotation(
    tmp_path, monkeypatch, workers
):
    # 130 instances, more than two chunks of 64: workers=2 runs two (forked) processes. The model
    # fails on the square moved 7 px, that of annotation 107 (ids 100 + i).
    real = noise_workers.noise_instance

    def failing(segmentation, *args):
        if segmentation == [shifted(SQUARE, 7)]:
            raise RuntimeError("unexpected")
        return real(segmentation, *args)

    monkeypatch.setattr(noise_workers, "noise_instance", failing)
    source = write_json(tmp_path / "in.json", coco_of([[shifted(SQUARE, i)] for i in range(130)]))
    with pytest.raises(AnnotationError) as error:
        noise_file(source, tmp_path / "out.json", "mid", seed=0, workers=workers)
    assert str(error.value) == (
        f"{source}: annotation 107: the noise failed on its segmentation: RuntimeError: unexpected"
    )
    assert sorted(os.listdir(tmp_path)) == ["in.json"]  # nothing written


@pytest.mark.slow
def test_worker_processes_start_after_opencv_ran_threaded_in_the_parent(tmp_path):
    # A forked child inherits OpenCV's thread-pool state but none of its threads; setting the
    # thread count in the child then waited forever (seen in a test run that drew pictures
    # before noising). In a fresh interpreter: threaded OpenCV, then 2 workers, 20 times over,
    # under a timeout; and the parent's thread count is as it was afterwards.
    source = write_json(tmp_path / "in.json", shapes_coco(num_images=20, per_image=8))
    script = f"""
import cv2, numpy as np
from noisy_mask.noise.apply import noise_file
threads = cv2.getNumThreads()
big = np.random.default_rng(0).random((1500, 1500), dtype=np.float32)
for k in range(20):
    cv2.GaussianBlur(cv2.resize(big, (1000, 1000)), (15, 15), 3)
    noise_file({str(source)!r}, {str(tmp_path / 'out.json')!r}, "mid", seed=0, workers=2)
assert cv2.getNumThreads() == threads > 1, (cv2.getNumThreads(), threads)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
