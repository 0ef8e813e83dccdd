"""The `lepton` command line: help, list, config printing, overrides and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import yaml

from lepton_cli.config import group_options, rewrite_overrides
from tests.helpers.cli import assert_one_line_error, run_cli


def test_help_does_not_import_torch():
    code = ("import sys; from lepton_cli.cli import main; main(['--help']); main(['train', '--help']); "
            "main(['list']); assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'pytorch_lightning' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage: lepton COMMAND" in result.stdout and "usage: lepton train" in result.stdout


def test_list_shows_every_group_with_descriptions():
    result = run_cli("list")
    assert result.returncode == 0
    for heading in ("source= / target=", "student= / teacher=", "method=", "trainer="):
        assert heading in result.stdout
    assert "synth_digits" in result.stdout and "matplotlib" in result.stdout
    method_only = run_cli("list", "method").stdout
    assert "source_only" in method_only and "trainer=" not in method_only


def test_list_unknown_group_is_one_line_error():
    assert_one_line_error(run_cli("list", "nope"), "unknown group", "method")


def test_group_options_skip_shared_files():
    assert "_shared" not in group_options("method")
    assert {"cpu", "gpu", "ddp", "debug"} <= set(group_options("trainer"))
    assert group_options("source") == group_options("target")
    assert group_options("student") == group_options("teacher")


def test_rewrite_overrides_maps_user_words_to_shared_groups():
    assert rewrite_overrides(["source=cifar10", "target=stl10", "student=resnet18", "+teacher=x", "method=dann"]) == [
        "dataset@source=cifar10", "dataset@target=stl10", "backbone@student=resnet18", "+backbone@teacher=x", "method=dann"]
    # dotted keys and already-rewritten words are left alone
    assert rewrite_overrides(["source.train_size=5", "dataset@source=mnist"]) == ["source.train_size=5", "dataset@source=mnist"]


def test_cfg_job_prints_composed_config_without_running(tmp_path):
    result = run_cli("train", "method.lr=0.003", "+extra.note=hello", "source.train_size=123", "--cfg", "job",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["method"]["lr"] == 0.003
    assert config["extra"]["note"] == "hello"
    assert config["source"]["name"] == "synth_digits" and config["source"]["train_size"] == 123
    assert config["target"]["name"] == "digits"
    assert not (tmp_path / "run").exists()


def test_unknown_group_option_lists_choices():
    line = assert_one_line_error(run_cli("train", "source=nope"), "unknown source 'nope'", "synth_digits", "digits")
    assert "lepton list source" in line
    assert_one_line_error(run_cli("train", "method=nope"), "unknown method 'nope'", "source_only")


def test_unknown_key_and_wrong_type_are_one_line_errors():
    assert_one_line_error(run_cli("train", "method.lrr=0.1"), "unknown key", "method.lrr", "+method.lrr")
    assert_one_line_error(run_cli("train", "method.lr=abc"), "method.lr expects a number", "abc")
    assert_one_line_error(run_cli("train", "trainer.fast_dev_run=maybe"), "expects true or false")


def test_unknown_command():
    assert_one_line_error(run_cli("trian"), "unknown command 'trian'")
