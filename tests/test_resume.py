"""Interrupted runs: SIGKILL then `resume=RUN_DIR` ends with the metrics of an uninterrupted run;
Ctrl-C saves a checkpoint, exits with 130 and prints the command that continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lepton_cli.run_dir import prepare_args
from tests.conftest import TINY

TWO_EPOCHS = [*[o for o in TINY if not o.startswith(("data.steps_per_epoch", "trainer.max_epochs"))],
              "data.steps_per_epoch=15", "trainer.max_epochs=2", "report=false", "seed=5"]
RESULT_KEYS = ("target/acc", "target/f1_macro", "source/acc", "source/per_class_acc", "steps")


def start(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("LEPTON_DEBUG", "HYDRA_FULL_ERROR")}
    return subprocess.Popen([sys.executable, "-m", "lepton_cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def results(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {key: metrics[key] for key in RESULT_KEYS}


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_resume_reuses_the_run_directory_and_its_overrides(tmp_path):
    run_dir = tmp_path / "killed"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text("- method.lr=0.05\n- seed=3\n")
    args = prepare_args(["seed=4", f"resume={run_dir}"])
    assert args == ["method.lr=0.05", "seed=4", f"resume={run_dir}", f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]


@pytest.mark.slow
def test_sigkill_after_an_epoch_then_resume_gives_the_same_metrics(tmp_path):
    # The default: epoch-boundary checkpoints only, which restore exactly, random state included.
    args = TWO_EPOCHS
    reference = finish(start(*args, f"hydra.run.dir={tmp_path / 'whole'}"))
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "killed"
    process = start(*args, f"hydra.run.dir={run_dir}")
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)  # written at the end of epoch 1
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "metrics.json").exists()

    resumed = finish(start(f"resume={run_dir}"))  # the saved overrides come back by themselves
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results(run_dir) == results(tmp_path / "whole")


@pytest.mark.slow
def test_ctrl_c_saves_exits_130_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "stopped"
    process = start(*TWO_EPOCHS, "callbacks.step_checkpoint.every_n_train_steps=3", f"hydra.run.dir={run_dir}")
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)  # training is under way
    process.send_signal(signal.SIGINT)
    stopped = finish(process)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("lepton: error:")]
    assert len(lines) == 1 and f"lepton train resume={run_dir.resolve()}" in lines[0], stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr
    resumed = finish(start(f"resume={run_dir}"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 30  # no step lost or repeated


@pytest.mark.slow
def test_sigterm_saves_exits_143_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "preempted"
    # Long enough that the signal surely lands during fit (a fast machine finishes 30 steps in a blink).
    long_run = [*TWO_EPOCHS, "data.steps_per_epoch=400", "callbacks.step_checkpoint.every_n_train_steps=3"]
    process = start(*long_run, f"hydra.run.dir={run_dir}")
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    process.send_signal(signal.SIGTERM)  # kill, timeout, a cluster's preemption
    stopped = finish(process)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("lepton: error:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and f"lepton train resume={run_dir.resolve()}" in lines[0]
    assert not (run_dir / "metrics.json").exists() and "Traceback" not in stopped.stderr


def test_ctrl_c_before_training_starts_is_one_line(tmp_path):
    process = start(*TWO_EPOCHS, f"hydra.run.dir={tmp_path / 'early'}")
    time.sleep(1.0)  # still importing or composing
    process.send_signal(signal.SIGINT)
    stopped = finish(process)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr


@pytest.mark.slow
def test_one_process_per_run_directory(tmp_path):
    run_dir = tmp_path / "busy"
    long_run = [*TWO_EPOCHS, "data.steps_per_epoch=400", "callbacks.step_checkpoint.every_n_train_steps=2"]
    first = start(*long_run, f"hydra.run.dir={run_dir}")
    try:
        wait_for(run_dir / "checkpoints" / "last.ckpt", first)
        before = (run_dir / "config.yaml").read_bytes()
        for second in ([f"resume={run_dir}"], [*TWO_EPOCHS, f"hydra.run.dir={run_dir}"]):
            refused = finish(start(*second))
            assert refused.returncode == 2 and "in use by another Lepton process" in refused.stderr, refused.stderr[-2000:]
        assert (run_dir / "config.yaml").read_bytes() == before and first.poll() is None
    finally:
        first.kill()
        first.wait()
    # SIGKILL: the kernel dropped the lock, so the run can be continued
    from lepton_cli.io import is_locked

    assert not is_locked(run_dir)
    assert prepare_args([f"resume={run_dir}"])[-3] == f"resume={run_dir.resolve()}"  # resumable, not "in use"


@pytest.mark.slow
def test_a_refused_resume_leaves_the_runs_saved_settings_alone(tmp_path):
    run_dir = tmp_path / "stopped"
    process = start(*TWO_EPOCHS, "callbacks.step_checkpoint.every_n_train_steps=3", f"hydra.run.dir={run_dir}")
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    process.send_signal(signal.SIGINT)
    assert finish(process).returncode == 130
    saved = (run_dir / ".hydra" / "overrides.yaml").read_text()
    refused = finish(start(f"resume={run_dir}", "data.image_size=32"))  # another model shape
    assert refused.returncode == 2 and "does not fit" in refused.stderr, refused.stderr[-2000:]
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == saved
    resumed = finish(start(f"resume={run_dir}"))  # the next resume still works, with the run's own settings
    assert resumed.returncode == 0, resumed.stderr[-3000:]


def test_a_run_without_last_ckpt_has_one_way_out(tmp_path):
    """Disk full before last.ckpt was written: resume and a fresh start must not send the user to each other."""
    from lepton_cli.errors import LeptonError

    run_dir = tmp_path / "half"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "best-epoch=0.ckpt").write_bytes(b"x")
    with pytest.raises(LeptonError) as resumed:
        prepare_args([f"resume={run_dir}"])
    with pytest.raises(LeptonError) as restarted:
        prepare_args([f"hydra.run.dir={run_dir}"])
    assert "without resume= and without hydra.run.dir=" in str(resumed.value)
    assert "choose a new hydra.run.dir" in str(restarted.value) and "resume=" not in str(restarted.value)
