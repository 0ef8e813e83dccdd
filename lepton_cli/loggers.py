"""Loggers of a run (the `logger=` group: csv, tensorboard, wandb, mlflow, none), and the library
noise kept out of a run's output.

CSV needs nothing beyond Lightning; TensorBoard, Weights & Biases and MLflow are optional extras,
checked before the run starts (`check_installed`) so that a missing one is one line naming the
`pip install` that brings it, not a traceback after the data is loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any

from lepton_cli import install_hint
from lepton_cli.errors import LeptonError

# logger key → (the modules any one of which it needs, the extra that installs one)
OPTIONAL = {"tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"), "wandb": (("wandb",), "wandb"),
            "mlflow": (("mlflow",), "mlflow")}


def check_installed(logger_cfg: Mapping[str, Any] | None) -> None:
    """One line for the first logger the config asks for whose package is not installed."""
    for key, (modules, extra) in OPTIONAL.items():
        if (logger_cfg or {}).get(key) and not any(importlib.util.find_spec(m) is not None for m in modules):
            raise LeptonError(f"logger={key} needs the {modules[0]} package, which is not installed; "
                              f"{install_hint(extra)} (or choose logger=csv)")


def make_loggers(save_dir: str, csv: bool = True, tensorboard: bool = False, wandb: Mapping | None = None,
                 mlflow: Mapping | None = None) -> list:
    """The Lightning loggers for a run directory. `wandb` / `mlflow`: the keyword arguments of
    Lightning's WandbLogger / MLFlowLogger (e.g. `offline: true`, `tracking_uri: file:...`), or
    None for none; their files go into the run directory unless told otherwise."""
    check_installed({"tensorboard": tensorboard, "wandb": wandb, "mlflow": mlflow})
    from pytorch_lightning import loggers

    made = []
    if csv:
        made.append(loggers.CSVLogger(save_dir, name="logs", version=""))
    if tensorboard:
        made.append(loggers.TensorBoardLogger(save_dir, name="tensorboard", version=""))
    if wandb is not None:
        made.append(loggers.WandbLogger(**{"save_dir": save_dir, **dict(wandb)}))
    if mlflow is not None:
        # MLflow 3 refuses its old file store: an SQLite database and the artifacts, both in the run directory.
        made.append(loggers.MLFlowLogger(**{"tracking_uri": f"sqlite:///{os.path.abspath(os.path.join(save_dir, 'mlflow.db'))}",
                                            "artifact_location": os.path.abspath(os.path.join(save_dir, "mlartifacts")),
                                            **dict(mlflow)}))
    return made


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_library_noise() -> None:
    """Lightning's advertising tip and a deprecation inside Lightning's own `_pytree` reach every run's
    output and say nothing about it; `lepton -v` / `LEPTON_VERBOSE=1` keeps them."""
    if os.environ.get("LEPTON_VERBOSE") == "1":
        return
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
