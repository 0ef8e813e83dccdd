"""Checks of the composed config before any data is read: value ranges, channels, epochs, the
accelerator, and that checkpoint files named in the config are readable weights."""

from __future__ import annotations

import fnmatch
from typing import Any

from lepton_cli.checkpoints import check_checkpoint_file
from lepton_cli.errors import LeptonError

# Numeric config values checked by the pattern of their dotted key (fnmatch), whatever the method
# or data set: a new method's `threshold` or `lr` is checked without a rule of its own.
RANGE_RULES: list[tuple[tuple[str, ...], str]] = [
    (("*.lr", "*_lr", "*batch_size", "data.steps_per_epoch", "*image_size", "*train_size", "*test_size",
      "method.*epochs", "*temperature", "trainer.log_every_n_steps", "trainer.devices", "trainer.num_nodes"), "> 0"),
    (("*weight_decay", "*_mult", "*trade_off*", "*weight", "*rampup", "data.num_workers", "*every_n_train_steps",
      "*warmup*", "*labels_per_class", "*gamma", "*power"), ">= 0"),
    (("*threshold*", "*confidence*", "*fraction", "*_prob*", "*probability*", "*dropout*", "*momentum", "*ema*"),
     "in [0, 1]"),
]
CHANNELS = (1, 3, "auto")
GPU_ACCELERATORS = ("gpu", "cuda")


# ---- config values ----------------------------------------------------------------------------
def validate(cfg) -> None:
    """Check the composed config before any data is read; one `LeptonError` for the first problem."""
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(cfg, resolve=True)
    for key, value in _numeric_leaves(values):
        _check_range(key, value)
    channels = values.get("data", {}).get("channels")
    if channels not in CHANNELS:
        raise LeptonError(f"data.channels must be 1 (grey) or 3 (RGB), got {channels!r}; set data.channels=1, 3 or auto")
    max_epochs = values.get("trainer", {}).get("max_epochs")
    if isinstance(max_epochs, int) and (max_epochs == 0 or max_epochs < -1):
        raise LeptonError(f"trainer.max_epochs must be at least 1 (or -1: until max_steps), got {max_epochs}; "
                          "set trainer.max_epochs=N")
    _check_accelerator(values.get("trainer", {}))
    for role in ("student", "teacher"):
        checkpoint = (values.get(role) or {}).get("checkpoint")
        if checkpoint:
            check_checkpoint_file(checkpoint, f"{role}.checkpoint")


def _numeric_leaves(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numeric_leaves(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix, node


def _check_range(key: str, value: float) -> None:
    for patterns, rule in RANGE_RULES:
        if not any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns):
            continue
        ok = {"> 0": value > 0, ">= 0": value >= 0, "in [0, 1]": 0 <= value <= 1}[rule]
        if not ok:
            raise LeptonError(f"{key} must be {rule}, got {value}; set {key}=VALUE with a value {rule}")
        return


def _check_accelerator(trainer: dict) -> None:
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch

    if not torch.cuda.is_available():
        raise LeptonError(f"trainer.accelerator={accelerator} but this machine has no CUDA GPU "
                          "(torch.cuda.is_available() is False); use trainer=cpu")


