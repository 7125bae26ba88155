"""The noise of each instance of a file, run in this process or shared among forked worker
processes; the results come in job order, so the output does not depend on the number of workers.
"""

import multiprocessing
import sys
from typing import Any, List, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..coco.io import AnnotationError
from .models import noise_instance
from .params import NoiseParams

_CHUNK = 64  # instances per task sent to a worker process

Job = Tuple[Any, int, int, int]  # segmentation, height, width, annotation id
_worker_setup: Tuple[NoiseParams, Sequence[int]] = (NoiseParams(), ())


class _InstanceFailure(Exception):
    """An unexpected error on one instance, named (`annotation A: ...`) for the parent process."""


def _run_job(job: Job, params: NoiseParams, stream: Sequence[int]):
    segmentation, height, width, ann_id = job
    rng = np.random.default_rng([*stream, ann_id])
    try:
        return noise_instance(
            segmentation,
            height,
            width,
            params.simplify_tolerance,
            params.jitter_sigma,
            params.kernel,
            rng,
        )
    except Exception as e:  # input the checks let through, or a bug: say which instance
        raise _InstanceFailure(
            f"annotation {ann_id}: the noise failed on its segmentation: {type(e).__name__}: {e}"
        ) from e


def _init_worker(params: NoiseParams, stream: Sequence[int]) -> None:
    global _worker_setup
    _worker_setup = (params, stream)


def _run_job_in_worker(job: Job):
    return _run_job(job, *_worker_setup)


def run_jobs(
    jobs: List[Job],
    params: NoiseParams,
    stream: Sequence[int],
    workers: int,
    progress: bool,
    name: str,
):
    """Results of every job, noise_instance of it with the generator default_rng([*stream,
    annotation id]), in job order (so the output does not depend on `workers`); an error on an
    instance is an AnnotationError naming the file `name` and the annotation."""
    try:
        yield from _run_jobs_unnamed(jobs, params, stream, workers, progress)
    except _InstanceFailure as e:
        raise AnnotationError(str(e), name) from e.__cause__


def _run_jobs_unnamed(
    jobs: List[Job], params: NoiseParams, stream: Sequence[int], workers: int, progress: bool
):
    bar = tqdm(
        total=len(jobs), desc="mask noise", unit="inst", file=sys.stderr, disable=not progress
    )
    with bar:
        if workers <= 1 or len(jobs) < 2 * _CHUNK:
            for job in jobs:
                yield _run_job(job, params, stream)
                bar.update()
            return
        # fork: workers inherit the loaded modules instead of importing them again
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        # A forked child inherits OpenCV's thread-pool state but none of its threads, and
        # reconfiguring that pool there waits forever for them. With one thread in the parent
        # while it forks, the children never touch the pool.
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with context.Pool(workers, _init_worker, (params, stream)) as pool:
                for result in pool.imap(_run_job_in_worker, jobs, chunksize=_CHUNK):
                    yield result
                    bar.update()
        finally:
            cv2.setNumThreads(opencv_threads)
