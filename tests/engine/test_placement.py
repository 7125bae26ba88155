"""Where runs go on one machine: the CPU's cores split between runs, or each run its own GPUs
(CUDA_VISIBLE_DEVICES) and, with several, train_net's --num-gpus on a free port of its own."""
import pytest

from noisy_mask.engine import placement
from noisy_mask.engine.placement import Slot, plan_slots


def visible_and_args(slots):
    return [(slot.env().get("CUDA_VISIBLE_DEVICES"), slot.train_net_args()) for slot in slots]


MULTI = ["--num-gpus", "2", "--dist-url", "auto"]
FOUR = ["--num-gpus", "4", "--dist-url", "auto"]
# (GPUs visible, GPUs per run) -> each run's CUDA_VISIBLE_DEVICES and train_net flags, by hand.
PLANS = {
    (1, 1): [("0", [])],
    (2, 1): [("0", []), ("1", [])],
    (4, 1): [("0", []), ("1", []), ("2", []), ("3", [])],
    (8, 1): [(str(i), []) for i in range(8)],
    (2, 2): [("0,1", MULTI)],
    (4, 2): [("0,1", MULTI), ("2,3", MULTI)],
    (8, 2): [("0,1", MULTI), ("2,3", MULTI), ("4,5", MULTI), ("6,7", MULTI)],
    (4, 4): [("0,1,2,3", FOUR)],
    (8, 4): [("0,1,2,3", FOUR), ("4,5,6,7", FOUR)],
}


@pytest.mark.parametrize("gpus, per_run", sorted(PLANS))
def test_gpus_are_cut_into_runs(gpus, per_run):
    slots = plan_slots("cuda", jobs=2, gpus_per_run=per_run,
                       gpus=[str(i) for i in range(gpus)], cores=16)
    assert visible_and_args(slots) == PLANS[gpus, per_run]
    assert {slot.threads for slot in slots} == {16 // len(PLANS[gpus, per_run])}
    assert {slot.device for slot in slots} == {"cuda"}


@pytest.mark.parametrize("gpus, per_run", [(1, 2), (1, 4), (2, 4)])
def test_a_run_needing_more_gpus_than_there_are_is_refused(gpus, per_run):
    with pytest.raises(ValueError, match=rf"--gpus-per-run {per_run}, but {gpus} GPU\(s\) are "
                                         "visible"):
        plan_slots("cuda", jobs=1, gpus_per_run=per_run, gpus=[str(i) for i in range(gpus)])


def test_the_gpus_this_process_was_given_are_the_ones_handed_out(monkeypatch):
    # A command started with CUDA_VISIBLE_DEVICES=5,7 places its runs on 5 and 7, not 0 and 1.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert placement.visible_gpus() == ("5", "7")
    slots = plan_slots("cuda", jobs=1, gpus_per_run=1, cores=4)
    assert visible_and_args(slots) == [("5", []), ("7", [])]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert placement.visible_gpus() == ()


def test_the_cpu_splits_its_cores_and_names_no_gpu():
    slots = plan_slots("cpu", jobs=2, cores=8)
    assert slots == [Slot(4), Slot(4)]
    assert slots[0].env() == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    assert slots[0].train_net_args() == [] and slots[0].device == "cpu"
    assert plan_slots("cpu", jobs=3, cores=2) == [Slot(1)] * 3  # at least one thread each


def test_the_device_goes_into_the_config_of_either_kind():
    assert Slot(2).config_opts("a.yaml") == ["MODEL.DEVICE", "cpu"]
    assert Slot(2, ("0",)).config_opts("lazy.py") == ["train.device=cuda"]


def test_auto_is_cuda_only_where_torch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(placement.torch.cuda, "is_available", lambda: False)
    assert placement.resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="--device cuda, but torch sees no GPU here"):
        placement.resolve_device("cuda")
    monkeypatch.setattr(placement.torch.cuda, "is_available", lambda: True)
    assert placement.resolve_device("auto") == "cuda"
    with pytest.raises(ValueError, match="--device must be one of auto, cpu, cuda"):
        placement.resolve_device("gpu")
