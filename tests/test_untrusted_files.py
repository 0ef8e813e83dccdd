"""Checkpoints and run directories are data, never code: a file shared by someone else cannot make
`lepton eval`, `lepton report` or `lepton train resume=` build or call anything, and a refused
command writes nothing into the run it was aimed at."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lepton_cli.errors import LeptonError
from lepton_cli.run_dir import prepare_args
from tests.conftest import TINY, compose_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from lepton_cli.train import run

    run_dir = tmp_path_factory.mktemp("untrusted") / "run"
    run(compose_config([*TINY, "report=false"], run_dir))
    return run_dir


def exec_marker(marker: Path) -> dict:
    """A config node that, handed to `hydra.utils.instantiate`, runs Python creating `marker`."""
    return {"_target_": "builtins.exec", "_args_": [f"open({str(marker)!r}, 'w').close()"]}


def tampered(checkpoint: dict, marker: Path, where: str) -> dict:
    evil = copy.deepcopy(checkpoint)
    config = evil["lepton_config"]
    if where == "student":
        config["student"] = exec_marker(marker)
    elif where == "student argument":
        config["student"]["num_features"] = exec_marker(marker)  # a nested object inside an allowed class
    elif where == "augment":
        config["augment"]["weak"] = exec_marker(marker)
    elif where == "target":
        config["target"] = {**exec_marker(marker), "name": "digits"}
    elif where == "interpolation":
        config["target"]["name"] = "${oc.env:HOME}"
    return evil


PLACES = ["student", "student argument", "augment", "target", "interpolation"]


@pytest.mark.parametrize("where", PLACES)
def test_eval_rebuilds_only_lepton_classes_from_a_checkpoints_config(finished_run, tmp_path, where, capsys):
    from lepton_cli.evaluate import main as eval_main

    marker = tmp_path / "pwned"
    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    evil_path = tmp_path / "evil.ckpt"
    torch.save(tampered(checkpoint, marker, where), evil_path)
    assert eval_main([f"checkpoint={evil_path}", f"hydra.run.dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "refused the checkpoint's config" in err and "Traceback" not in err
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["student", "target"])
def test_report_of_a_run_with_a_tampered_checkpoint_runs_nothing(finished_run, tmp_path, where, capsys):
    from lepton_cli.report import main as report_main

    marker = tmp_path / "pwned"
    shared = tmp_path / "shared_run"
    shutil.copytree(finished_run, shared)
    checkpoint = torch.load(shared / "checkpoints" / "last.ckpt", weights_only=True)
    torch.save(tampered(checkpoint, marker, where), shared / "checkpoints" / "last.ckpt")
    assert report_main([str(shared)]) == 2
    assert "refused the checkpoint's config" in capsys.readouterr().err
    assert not marker.exists()


def test_the_untampered_checkpoint_still_evaluates(finished_run, tmp_path):
    from lepton_cli.evaluate import evaluate

    result = evaluate(str(finished_run / "checkpoints" / "last.ckpt"), output_dir=str(tmp_path), quiet=True)
    assert 0.0 <= result["target/acc"] <= 1.0


# ---- resume=DIR: the run's saved overrides are data ------------------------------------------------
def interrupted_run(tmp_path: Path, saved: list[str]) -> Path:
    run_dir = tmp_path / "interrupted"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(saved))
    return run_dir


@pytest.mark.parametrize("line", [
    "+callbacks.evil._target_=builtins.exec",       # a new object for Hydra to build
    "method._target_=builtins.exec",                # another class for an existing object
    "hydra.job.env_set.PYTHONSTARTUP=/tmp/evil.py",  # Hydra's own settings
    "hydra/launcher=submitit_slurm",                # Hydra's own groups
    "method=../../../tmp/evil",                     # a config file outside Lepton's tree
    "student.name=${oc.env:AWS_SECRET_ACCESS_KEY}",  # an interpolation (reads the environment; oc.decode builds nodes)
    "+data.evil=1",                                 # a key Lepton's config does not have
    "~callbacks.checkpoint",                        # deleting Lepton's own settings
    "+method@_global_=../../../../tmp/evil",         # a group moved to another package, a file outside conf/
    "method@_global_=dann",                         # an option of Lepton's, at the wrong place
    "+logger@student=csv",                          # a logger as the student backbone
    "callbacks.checkpoint=null",                    # switching off checkpoints
    "callbacks.checkpoint.dirpath=/tmp/elsewhere",  # a place on disk chosen by the directory's author
])
def test_resume_refuses_saved_overrides_that_are_not_lepton_settings(tmp_path, line):
    run_dir = interrupted_run(tmp_path, ["method=dann", line])
    with pytest.raises(LeptonError, match="Lepton takes only its own settings from a run directory"):
        prepare_args([f"resume={run_dir}"])


def test_resume_keeps_plain_lepton_settings(tmp_path):
    saved = ["method=dann", "dataset@source=mnist", "method.lr=0.05", "+trainer.max_steps=10"]
    run_dir = interrupted_run(tmp_path, saved)
    assert prepare_args([f"resume={run_dir}"])[:len(saved)] == saved


def test_a_place_on_disk_is_taken_from_the_command_line_not_from_the_run_directory(tmp_path):
    run_dir = interrupted_run(tmp_path, ["method=dann", "data.root=/somebody/else"])
    with pytest.raises(LeptonError, match="names a place on disk.*give data.root= again on the command line"):
        prepare_args([f"resume={run_dir}"])
    args = prepare_args([f"resume={run_dir}", "data.root=/my/data"])
    assert "data.root=/my/data" in args and "data.root=/somebody/else" not in args


def test_a_yaml_file_outside_conf_never_reaches_hydra(tmp_path):
    """The exploit the check closes: a group override at another package loads any YAML file."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(yaml.safe_dump({"callbacks": {"evil": {"_target_": "pathlib.Path.touch", "self": str(marker)}}}))
    relative = Path("../" * 12 + str(evil.with_suffix("")).lstrip("/"))
    run_dir = interrupted_run(tmp_path, [f"+method@_global_={relative}"])
    done = subprocess.run([sys.executable, "-m", "lepton_cli.train", f"resume={run_dir}"], check=False,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Lepton's options" in done.stderr, done.stderr[-2000:]
    assert not marker.exists()


@pytest.mark.parametrize("content", ["{not: [valid", "just a string", "- 1\n- 2\n"])
def test_a_corrupt_saved_overrides_file_is_one_line(tmp_path, content):
    run_dir = interrupted_run(tmp_path, [])
    (run_dir / ".hydra" / "overrides.yaml").write_text(content)
    with pytest.raises(LeptonError, match="overrides.yaml"):
        prepare_args([f"resume={run_dir}"])


def test_a_malicious_resume_through_the_command_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    run_dir = interrupted_run(tmp_path, ["+callbacks.evil._target_=builtins.exec",
                                         f"+callbacks.evil._args_=[\"open('{marker}','w').close()\"]"])
    before = (run_dir / ".hydra" / "overrides.yaml").read_text()
    done = subprocess.run([sys.executable, "-m", "lepton_cli.train", f"resume={run_dir}"], check=False,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not marker.exists()
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == before


# ---- the run directory is resolved before anything is written ---------------------------------------
def finished_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / "fin"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "metrics.json").write_text("{}")
    (run_dir / ".hydra" / "overrides.yaml").write_text("- seed=7\n")
    return run_dir


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("spelling", ["dotdot", "env"])
def test_a_finished_run_is_refused_however_its_directory_is_spelled(tmp_path, spelling):
    run_dir = finished_dir(tmp_path)
    before = tree(tmp_path / "runs")
    env = {"RUN": str(run_dir)}
    value = {"dotdot": f"{tmp_path}/runs/missing/../fin", "env": "${oc.env:RUN}"}[spelling]
    import os

    done = subprocess.run([sys.executable, "-m", "lepton_cli.train", *TINY, f"hydra.run.dir={value}"],
                          check=False, capture_output=True, text=True, env={**os.environ, **env})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "already holds a finished run" in done.stderr and "Traceback" not in done.stderr
    assert tree(tmp_path / "runs") == before and not (tmp_path / "runs" / "missing").exists()


@pytest.mark.parametrize("value", ["/", "~"])
def test_the_root_or_home_is_not_a_run_directory(value):
    with pytest.raises(LeptonError, match="not a directory of its own"):
        prepare_args([f"hydra.run.dir={value}"])


def test_the_default_run_directory_is_pinned_before_hydra_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = prepare_args(["method=dann"])
    pinned = Path(args[-1].removeprefix("hydra.run.dir="))
    assert args[-1].startswith("hydra.run.dir=") and pinned.is_absolute()
    assert pinned.parent == tmp_path / "runs" and pinned.name.endswith("synth_digits_to_digits_dann")


def test_arguments_a_class_does_not_declare_are_refused(finished_run, tmp_path, capsys):
    """timm's create_model takes **kwargs such as checkpoint_path (a file it would load)."""
    from lepton_cli.evaluate import main as eval_main

    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    evil = copy.deepcopy(checkpoint)
    evil["lepton_config"]["student"] = {"_target_": "lepton_cli.models.backbones.timm_backbone", "name": "resnet18",
                                        "checkpoint_path": str(tmp_path / "other.ckpt")}
    torch.save(evil, tmp_path / "evil.ckpt")
    assert eval_main([f"checkpoint={tmp_path / 'evil.ckpt'}"]) == 2
    assert "does not declare" in capsys.readouterr().err


def test_eval_reads_and_writes_data_where_this_machine_says(finished_run, tmp_path, monkeypatch):
    """The stored data.root / cache_dir / download are the author's; eval uses this machine's."""
    from lepton_cli.evaluate import evaluate

    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    elsewhere = tmp_path / "authors_choice"
    checkpoint["lepton_config"]["data"].update(root=str(elsewhere), cache_dir=str(elsewhere), download=True)
    checkpoint["lepton_config"]["target"]["name"] = "../../escape"
    torch.save(checkpoint, tmp_path / "moved.ckpt")
    monkeypatch.setenv("LEPTON_CACHE", str(tmp_path / "my_cache"))
    evaluate(str(tmp_path / "moved.ckpt"), output_dir=str(tmp_path / "out"), quiet=True)
    assert not elsewhere.exists()
    cached = [p.relative_to(tmp_path / "my_cache") for p in (tmp_path / "my_cache").rglob("*.npz")]
    assert cached and all(len(p.parts) == 1 for p in cached)  # inside the cache folder, whatever the name


def test_a_multirun_into_a_sweep_directory_with_finished_runs_is_refused(tmp_path):
    sweep_dir = tmp_path / "sweep"
    (sweep_dir / "0").mkdir(parents=True)
    (sweep_dir / "0" / "metrics.json").write_text("{}")
    with pytest.raises(LeptonError, match="already holds finished runs.*lepton sweep --dir"):
        prepare_args(["-m", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"])


@pytest.mark.parametrize("line", ["logger=wandb", "logger.mlflow.tracking_uri=https://example.org"])
def test_an_online_logger_is_taken_from_the_command_line_not_from_the_run_directory(tmp_path, line):
    run_dir = interrupted_run(tmp_path, ["method=dann", line])
    with pytest.raises(LeptonError, match="online.*again on the command line if you mean to"):
        prepare_args([f"resume={run_dir}"])
    given = "logger=wandb" if line == "logger=wandb" else "logger=mlflow"
    args = prepare_args([f"resume={run_dir}", given, *([] if given == "logger=wandb" else [line])])
    assert given in args


def test_a_local_logger_choice_is_kept_on_resume(tmp_path):
    run_dir = interrupted_run(tmp_path, ["method=dann", "logger=tensorboard"])
    assert "logger=tensorboard" in prepare_args([f"resume={run_dir}"])


def test_a_token_checkpoint_is_refused_with_what_to_use_instead(tmp_path):
    from lepton_cli.builders.saved_model import _check_shape

    config = {"data": {"image_size": "auto", "channels": "auto", "input_dim": 5000}, "student": {}, "method": {},
              "source": {"name": "amazon_books"}, "target": {"name": "amazon_dvd"}}

    def weak(target: str) -> dict:
        return {**config, "augment": {"weak": {"_target_": target}}}

    with pytest.raises(LeptonError, match=r"token run.*vocabulary.*not stored.*metrics.json"):
        _check_shape(weak("lepton_cli.data.augment.TokenDropout"), tmp_path / "last.ckpt")
    _check_shape(weak("lepton_cli.data.augment.FeatureDropout"), tmp_path / "last.ckpt")  # bag-of-words: readable
    _check_shape(weak("lepton_cli.data.augment.LogMelAugment"), tmp_path / "last.ckpt")  # audio: readable
    # The modality is read from the augmentation's class only when it is one of Lepton's own: nothing is imported else.
    with pytest.raises(LeptonError, match=r"augment.weak names 'os.system', not one of Lepton's augmentations"):
        _check_shape(weak("os.system"), tmp_path / "last.ckpt")
    _check_shape({**config, "data": {"image_size": 28, "channels": 1, "input_dim": "auto"}}, tmp_path / "last.ckpt")