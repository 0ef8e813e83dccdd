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
        config["target"] = exec_marker(marker)
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
])
def test_resume_refuses_saved_overrides_that_are_not_lepton_settings(tmp_path, line):
    run_dir = interrupted_run(tmp_path, ["method=dann", line])
    with pytest.raises(LeptonError, match="Lepton takes only its own settings from a run directory"):
        prepare_args([f"resume={run_dir}"])


def test_resume_keeps_plain_lepton_settings(tmp_path):
    saved = ["method=dann", "dataset@source=mnist", "method.lr=0.05", "+trainer.max_steps=10", "data.root=/data/x"]
    run_dir = interrupted_run(tmp_path, saved)
    assert prepare_args([f"resume={run_dir}"])[:len(saved)] == saved


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
