"""A Rich progress bar that reads the logged metrics only when they change."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Lightning's Rich bar reads `trainer.progress_bar_metrics` after every training step, and that
    turns each logged tensor into a Python number: on a GPU one host sync per step, which stops the
    CPU from queueing the next steps. Methods log their losses only at the steps the loggers write
    (`LeptonMethod.log_losses`), so between those steps the numbers cannot change: this bar advances
    its counter every step and reads the metrics only at those steps and at epoch ends."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer._logger_connector.should_update_logs or trainer.fast_dev_run:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()  # a mid-epoch resume, as Lightning's own bar does
        self._update(self.train_progress_bar_id, batch_idx + 1)
        self.refresh()
