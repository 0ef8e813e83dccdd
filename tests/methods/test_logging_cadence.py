"""Training terms reach Lightning's loggers only at the steps they write (`log_every_n_steps`: logging
the others cost a millisecond of Python per value and showed nothing), while the report's per-epoch
means (and the NaN guard) still see every step's terms."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lepton_cli.callbacks import ReportCallback
from tests.methods.test_teacher_methods import train_log


def test_terms_reach_the_csv_log_at_every_nth_step_only(run_experiment):
    _, run_dir = run_experiment("method=dann", "data.steps_per_epoch=6", "logger=csv", "trainer.log_every_n_steps=3")
    for term in ("train/loss", "train/classification", "train/transfer", "train/domain_acc"):
        assert len(train_log(run_dir, term)) == 2, term  # steps 3 and 6


def test_report_epoch_means_average_every_step(tmp_path):
    report = ReportCallback(tmp_path)
    report.on_train_epoch_start(None, None)
    module = SimpleNamespace()
    for loss, transfer in ((1.0, 0.5), (2.0, 0.25), (6.0, 0.0)):
        module.last_losses = {"loss": torch.tensor(loss), "transfer": torch.tensor(transfer)}
        report.on_train_batch_end(None, module, None, None, 0)
    report.on_train_epoch_end(SimpleNamespace(current_epoch=0), module)
    assert report.history[0] == {"epoch": 0, "train/loss": pytest.approx(3.0), "train/transfer": pytest.approx(0.25)}
