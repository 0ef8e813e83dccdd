"""Speed options of `trainer=`: Lepton's own keys beside Lightning's Trainer arguments.

- `trainer.compile`: false | true | a `torch.compile` mode (e.g. reduce-overhead, which captures
  CUDA graphs); off by default until measured per model. The classifier is compiled in place
  (`nn.Module.compile`), so checkpoints keep their plain parameter names.
- `trainer.channels_last`: auto | true | false; auto uses the channels-last memory format on a GPU
  for colour images, where convolutions run faster in it.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, open_dict

log = logging.getLogger("lepton")

SPEED_KEYS = ("compile", "channels_last")


def trainer_arguments(trainer_cfg: DictConfig) -> DictConfig:
    """`cfg.trainer` without Lepton's speed keys: what `pytorch_lightning.Trainer` accepts."""
    arguments = trainer_cfg.copy()
    with open_dict(arguments):
        for key in SPEED_KEYS:
            arguments.pop(key, None)
    return arguments


def apply_speed_options(method, trainer_cfg: DictConfig, on_gpu: bool, channels: int) -> None:
    channels_last = trainer_cfg.get("channels_last", "auto")
    if channels_last is True or (channels_last == "auto" and on_gpu and channels == 3):
        import torch

        method.to(memory_format=torch.channels_last)
        log.info("channels_last memory format")
    mode = trainer_cfg.get("compile", False)
    if mode:
        method.model.compile(**({} if mode is True else {"mode": str(mode)}))
        log.info("torch.compile(%s) of the classifier", "default" if mode is True else mode)
