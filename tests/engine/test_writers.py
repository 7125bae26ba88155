"""The metric writers of both trainers: detectron2's three where tensorboard is installed, the
console and metrics.json without TensorBoard where it is not (a machine with torch but no
tensorboard would otherwise stop at the first write)."""

import logging
import sys
from types import SimpleNamespace

import pytest
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from omegaconf import OmegaConf

from noisy_mask.engine import lazy, trainer


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def records():
    """The messages of the "noisy_mask" logger (detectron2's setup_logger may stop it
    propagating to pytest's handler)."""
    handler, log = Records(), logging.getLogger("noisy_mask")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield handler.messages
    log.removeHandler(handler)
    log.setLevel(level)


@pytest.fixture
def no_tensorboard(monkeypatch):
    """`import torch.utils.tensorboard` fails as without the tensorboard package (a None entry
    in sys.modules makes the import statement raise ModuleNotFoundError)."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    trainer.tensorboard_available.cache_clear()
    yield
    trainer.tensorboard_available.cache_clear()


def both_trainers_writers(output_dir):
    """The writers of the YAML trainer and of the lazy trainer, for 5 iterations."""
    yaml_trainer = SimpleNamespace(cfg=SimpleNamespace(OUTPUT_DIR=str(output_dir)), max_iter=5)
    cfg = OmegaConf.create({"train": {"output_dir": str(output_dir), "max_iter": 5,
                                      "log_period": 1}})  # fmt: skip
    writers = {
        "yaml": trainer.Trainer.build_writers(yaml_trainer),
        "lazy": lazy.metric_writer(cfg)._writers,
    }
    for writer in [w for each in writers.values() for w in each]:
        writer.close()
    return writers


def test_without_tensorboard_the_console_and_metrics_json_stay(no_tensorboard, records, tmp_path):
    for name, writers in both_trainers_writers(tmp_path).items():
        assert [type(w) for w in writers] == [CommonMetricPrinter, JSONWriter], name
        assert writers[1]._file_handle.name == str(tmp_path / "metrics.json")
    assert both_trainers_writers(tmp_path / "again")["yaml"]
    # Said once per process, however many trainers are built.
    skipped = [m for m in records if "tensorboard is not installed" in m]
    assert skipped == [
        "tensorboard is not installed: no TensorBoard event files (metrics.json and the console "
        "have every metric)"
    ]


def test_with_tensorboard_detectron2s_three_writers(records, tmp_path):
    trainer.tensorboard_available.cache_clear()
    if not trainer.tensorboard_available():
        pytest.skip("tensorboard is not installed here")
    for name, writers in both_trainers_writers(tmp_path).items():
        assert [type(w) for w in writers] == [CommonMetricPrinter, JSONWriter, TensorboardXWriter]
    assert not [m for m in records if "tensorboard" in m]
