"""The `lepton` command line: help, list, config printing, overrides and one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
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


def test_version_info_and_list_help():
    import lepton_cli

    assert run_cli("--version").stdout.strip() == f"lepton {lepton_cli.__version__}"
    info = run_cli("--info")
    assert info.returncode == 0, info.stderr
    for name in ("lepton ", "python ", "torch ", "pytorch-lightning ", "hydra-core ", "device "):
        assert f"\n{name}" in f"\n{info.stdout}", info.stdout
    listing = run_cli("list", "--help")
    assert listing.returncode == 0 and listing.stdout.startswith("usage: lepton list") and not listing.stderr


def test_bash_completion_script_completes_groups_and_options(tmp_path):
    """The script `lepton --completion bash` prints, sourced in bash, completes `lepton train meth<TAB>`."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    bin_dir = tmp_path / "bin"  # `lepton` on PATH as this interpreter runs it
    bin_dir.mkdir()
    (bin_dir / "lepton").write_text(f"#!/bin/sh\nexec {sys.executable} -m lepton_cli \"$@\"\n")
    (bin_dir / "lepton").chmod(0o755)
    script = run_cli("--completion", "bash").stdout

    def complete(line: str) -> list[str]:
        words = line.replace("=", " = ").split() + ([""] if line.endswith((" ", "=")) else [])
        code = (f'{script}\nCOMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=({" ".join(repr(w) for w in words)}); '
                f'COMP_CWORD={len(words) - 1}; _lepton_complete; printf "%s\\n" "${{COMPREPLY[@]}}"')
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        result = subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
        return result.stdout.split()

    assert complete("lepton tr") == ["train"]
    assert complete("lepton train meth") == ["method="]
    assert {"dann", "distill"} <= set(complete("lepton train method=d"))  # after bash's `=` word break
    assert "lr=" in [c.rsplit(".", 1)[-1] for c in complete("lepton train method.l")]
    assert "autoload -U +X bashcompinit" in run_cli("--completion", "zsh").stdout


def test_multirun_with_cfg_is_one_line_error():
    assert_one_line_error(run_cli("train", "-m", "--cfg", "job"), "--multirun and --cfg cannot be given together")


def test_any_trainer_argument_is_accepted_and_unknown_ones_get_close_names():
    from lepton_cli.errors import LeptonError
    from lepton_cli.overrides import check_overrides, trainer_overrides

    assert trainer_overrides(["trainer.gradient_clip_val=1", "trainer.max_steps=5", "trainer.nope=1"]) == [
        "++trainer.gradient_clip_val=1", "trainer.max_steps=5", "trainer.nope=1"]
    cfg = check_overrides(["trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=2", "trainer.max_steps=7"])
    assert (cfg.trainer.gradient_clip_val, cfg.trainer.accumulate_grad_batches, cfg.trainer.max_steps) == (0.5, 2, 7)
    assert check_overrides(["trainer=ddp", "trainer.strategy=ddp_spawn"]).trainer.strategy == "ddp_spawn"  # a preset's key
    with pytest.raises(LeptonError, match=r"not an argument of pytorch_lightning.Trainer; close names: .*trainer.gradient_clip_val"):
        check_overrides(["trainer.gradient_clip=1"])
