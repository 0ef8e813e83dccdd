"""The progress bar reads the logged metrics (a host sync per read on a GPU) only at the steps the
loggers write, and still shows the latest loss."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lepton_cli.callbacks.progress import ProgressBar


class TinyModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        if self.trainer._logger_connector.should_update_logs:  # as LeptonMethod.log_losses
            self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=1)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_metrics_are_read_only_at_logging_steps_and_the_bar_shows_the_latest(tmp_path, monkeypatch):
    reads = []
    original = ProgressBar.get_metrics

    def counting(self, trainer, module):
        reads.append(trainer.global_step)
        return original(self, trainer, module)

    monkeypatch.setattr(ProgressBar, "get_metrics", counting)
    counter = []
    original_update = ProgressBar._update
    monkeypatch.setattr(ProgressBar, "_update", lambda self, bar_id, current, *args, **kwargs: (
        counter.append(current) if bar_id == self.train_progress_bar_id else None,
        original_update(self, bar_id, current, *args, **kwargs))[-1])
    bar = ProgressBar()
    trainer = pl.Trainer(max_epochs=1, log_every_n_steps=5, callbacks=[bar], logger=False, enable_checkpointing=False,
                         default_root_dir=tmp_path, accelerator="cpu")
    data = DataLoader(TensorDataset(torch.randn(20, 4)), batch_size=1)
    trainer.fit(TinyModule(), data)
    during_steps = [step for step in reads if step < 20]
    assert during_steps and len(during_steps) <= 20 // 5, reads  # not once per step
    assert counter == list(range(1, 21))  # the step counter still moves every step
    assert "train/loss" in trainer.progress_bar_metrics
