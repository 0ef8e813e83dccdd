"""The `logger=` group: CSV by default, TensorBoard, W&B and MLflow as optional extras that fail in one
line when missing, and wandb's offline mode writing only into the run directory."""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings

import pytest

from lepton_cli.config import group_options
from lepton_cli.errors import LeptonError
from lepton_cli.loggers import check_installed, make_loggers, quiet_library_noise
from tests.helpers.cli import assert_one_line_error, run_cli


def test_logger_group_has_every_logger_and_csv_is_the_default(tmp_path):
    from tests.conftest import compose_config

    assert {"csv", "tensorboard", "wandb", "mlflow", "none"} <= set(group_options("logger"))
    cfg = compose_config([], tmp_path / "run")
    assert cfg.logger.csv is True and not cfg.logger.get("tensorboard") and not cfg.logger.get("wandb")
    (csv,) = make_loggers(str(tmp_path), csv=True)
    assert type(csv).__name__ == "CSVLogger" and make_loggers(str(tmp_path), csv=False) == []


def test_missing_package_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "tensorboard", "tensorboardX")
                        else real(name, *a))
    with pytest.raises(LeptonError, match=r"logger=wandb needs the wandb package.*pip install 'lepton-transfer\[wandb\]'"):
        check_installed({"wandb": {"offline": True}})
    with pytest.raises(LeptonError, match=r"pip install 'lepton-transfer\[tensorboard\]'"):
        make_loggers("unused", tensorboard=True)
    check_installed({"csv": True, "wandb": None})  # asked for nothing optional: nothing to install


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_logger_mlflow_without_mlflow_stops_before_training(tmp_path):
    result = run_cli("train", "logger=mlflow", "trainer=debug", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(result, "logger=mlflow needs the mlflow package", "pip install 'lepton-transfer[mlflow]'")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    loggers = make_loggers(str(tmp_path), tensorboard=True)
    loggers[1].log_metrics({"train/loss": 1.5}, step=0)
    loggers[1].finalize("success")
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_wandb_offline_writes_only_into_the_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))  # not ~/.config/wandb
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    _, wandb_logger = make_loggers(str(tmp_path / "run"), wandb={"project": "lepton-test", "name": "t", "offline": True})
    wandb_logger.log_metrics({"train/loss": 0.5}, step=0)
    wandb_logger.experiment.finish()
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert list(run.glob("run-*.wandb"))


def test_lightning_tip_and_pytree_warning_are_quiet_unless_verbose(monkeypatch, caplog):
    monkeypatch.delenv("LEPTON_VERBOSE", raising=False)
    tip_logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    monkeypatch.setattr(tip_logger, "filters", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
    with caplog.at_level(logging.INFO, logger=tip_logger.name):
        tip_logger.info("💡 Tip: try installing litlogger")
        tip_logger.info("GPU available: False")
    assert "Tip" not in caplog.text and "GPU available" in caplog.text


def test_mlflow_store_writes_only_into_the_run_directory(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # a stray ./mlruns would show up here
    os.makedirs(tmp_path / "run")
    _, mlflow_logger = make_loggers(str(tmp_path / "run"), mlflow={"experiment_name": "lepton-test", "run_name": "t"})
    mlflow_logger.log_metrics({"train/loss": 0.25}, step=0)
    mlflow_logger.finalize("success")
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    (metric,) = client.get_metric_history(mlflow_logger.run_id, "train/loss")
    assert metric.value == 0.25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
