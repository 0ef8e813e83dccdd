"""The config schema (lepton_cli/schema/): every option composes with it, types are enforced
while composing, rules are read from the fields, and keys only some options have stay optional."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from lepton_cli.config import compose_job, group_options
from lepton_cli.errors import LeptonError
from lepton_cli.overrides import check_overrides
from lepton_cli.schema import DataSettings, MethodSettings, PseudoLabelSettings, validate
from tests.conftest import TINY, compose_config


@pytest.mark.parametrize("group", ["method", "trainer"])
def test_every_option_composes_and_passes_the_schema(group):
    # A schema field whose key an option's YAML lacks would show up here as `??? has no value`.
    for option in group_options(group):
        cfg = check_overrides([f"{group}={option}"])
        assert OmegaConf.get_type(cfg.data) is DataSettings
        assert issubclass(OmegaConf.get_type(cfg.method), MethodSettings)


def test_types_are_enforced_while_composing():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_job(("method.lr=abc",))  # any composition, not only `lepton train`'s check
    cfg = compose_job(("method=pseudo_label", "method.threshold=0.5"))
    assert OmegaConf.get_type(cfg.method) is PseudoLabelSettings and cfg.method.threshold == 0.5
    with pytest.raises(Exception, match="could not be converted to Float"):
        cfg.method.threshold = "high"


def test_backbone_lr_mult_null_means_auto_and_negatives_are_refused():
    assert check_overrides(["method.backbone_lr_mult=null"]).method.backbone_lr_mult is None
    with pytest.raises(LeptonError, match=r"method.backbone_lr_mult must be >= 0, got -1"):
        check_overrides(["method.backbone_lr_mult=-1"])


def test_keys_of_some_options_only_are_checked_where_present_and_never_added():
    cfg = check_overrides(["method.optimizer._target_=torch.optim.Adam", "~method.optimizer.momentum",
                           "~method.optimizer.nesterov"])
    assert "momentum" not in cfg.method.optimizer  # the schema adds no `momentum: ???` to Adam
    assert "trade_off" not in check_overrides(["method=source_only"]).method
    assert check_overrides(["+method.extra=1"]).method.extra == 1  # the method group stays open


def test_validate_the_job_config_inside_the_app(tmp_path, monkeypatch):
    import torch

    cfg = compose_config([*TINY, "trainer=gpu"], tmp_path / "run")  # `${hydra:...}` resolves here
    validate(cfg, on_this_machine=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LeptonError, match="no CUDA GPU"):
        validate(cfg)


def test_lepton_list_imports_no_hydra():
    code = "import sys; from lepton_cli.config import group_options; group_options('method'); print('hydra' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
