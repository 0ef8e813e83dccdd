"""Loggers for a run directory: CSV always available, TensorBoard when installed."""

from __future__ import annotations

import importlib.util


def make_loggers(save_dir: str, csv: bool = True, tensorboard: bool | str = "auto") -> list:
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    loggers = []
    if csv:
        loggers.append(CSVLogger(save_dir, name="logs", version=""))
    has_tensorboard = importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None
    if tensorboard is True or (tensorboard == "auto" and has_tensorboard):
        loggers.append(TensorBoardLogger(save_dir, name="tensorboard", version=""))
    return loggers
