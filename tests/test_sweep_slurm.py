"""`lepton sweep --launcher slurm`: submitit's settings from the command line and from each run's
config, the one-line mistakes, and real runs through submitit's local executor and through a fake
SLURM (tests/helpers/fake_slurm.py: sbatch, srun, sacct and scancel on this machine).

The runs are real `python -m lepton_cli.train` subprocesses (trainer=debug: one batch each); they
run one after another (array parallelism 1) so that a test never trains twice at once.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import sys
import time
from pathlib import Path

import pytest

from lepton_cli.errors import LeptonError
from lepton_cli.sweep import cli as sweep_cli
from lepton_cli.sweep import launchers
from lepton_cli.sweep import slurm as slurm_launcher
from lepton_cli.sweep.cli import main
from tests.conftest import TINY
from tests.helpers import fake_slurm
from tests.helpers.fake_train import fake_metrics
from tests.helpers.sweep_fakes import fake_launch_task, read_csv

JOB = ["trainer=debug", *TINY]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.fast_dev_run=true", *TINY]


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    """A fake SLURM first on PATH; yields its folder of job states, kills what is left at the end."""
    pytest.importorskip("submitit")
    state = fake_slurm.install(tmp_path / "slurm-bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'slurm-bin'}{os.pathsep}{os.environ['PATH']}")
    yield state
    fake_slurm.kill_all(state)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def assert_leaderboard_is_the_runs(sweep_dir: Path, rows: int) -> list[dict]:
    table = read_csv(sweep_dir / "leaderboard.csv")
    assert len(table) == rows and all(row["n"] == "1" for row in table)
    for row in table:
        metrics = json.loads((Path(row["run_dirs"]) / "metrics.json").read_text())
        assert float(row["target_acc_mean"]) == pytest.approx(metrics["target/acc"])
    return table


def sbatch_script(sweep_dir: Path) -> str:
    scripts = sorted((sweep_dir / ".submitit").rglob("*_submission.sh"))
    assert len(scripts) == 1, scripts
    return scripts[0].read_text()


# ---- settings and mistakes (no training) ----------------------------------------------------------
def test_hydra_launcher_spellings_choose_the_launcher():
    joblib = sweep_cli.parse_args(["hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "seed=0,1"])
    assert (joblib.launcher, joblib.jobs, joblib.grid) == ("local", 3, ["seed=0,1"])
    basic = sweep_cli.parse_args(["--jobs", "4", "hydra/launcher=basic", "seed=0"])
    assert (basic.launcher, basic.jobs) == ("local", 1)
    slurm = sweep_cli.parse_args(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
                              "hydra.launcher.additional_parameters={mail-type:END}", "--jobs", "2", "seed=0"])
    assert slurm.launcher == "slurm" and slurm.grid == ["seed=0"]
    assert slurm.launcher_settings == {"partition": "gpu", "additional_parameters": {"mail-type": "END"},
                                       "array_parallelism": 2}  # --jobs N: at most N at once


def test_preset_launcher_settings_apply_to_slurm_runs_only(tmp_path, monkeypatch):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "cluster.yaml").write_text("grid:\n  - seed=0,1\nlauncher:\n  partition: gpu\n  timeout_min: 30\n")
    (tmp_path / "sweep" / "typo.yaml").write_text("grid:\n  - seed=0\nlauncher:\n  partitio: gpu\n")
    monkeypatch.setattr(sweep_cli, "conf_dir", lambda: tmp_path)
    on_slurm = sweep_cli.parse_args(["sweep=cluster", "--launcher", "slurm", "hydra.launcher.timeout_min=90"])
    assert on_slurm.launcher_settings == {"partition": "gpu", "timeout_min": 90}  # the command line wins
    assert sweep_cli.parse_args(["sweep=cluster"]).launcher_settings == {}
    with pytest.raises(LeptonError, match="unknown launcher setting .*launcher.partitio; known: .*partition"):
        sweep_cli.parse_args(["sweep=typo"])


def test_nodes_tasks_and_gpus_come_from_the_config(slurm, tmp_path):
    options = sweep_cli.parse_args(["--launcher", "slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=120",
                                "hydra.launcher.mem_gb=32", "hydra.launcher.tasks_per_node=4", "seed=0"])
    parameters = slurm_launcher.executor_parameters(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], options)
    assert parameters == {"timeout_min": 120, "name": "lepton-sweep", "slurm_partition": "gpu", "mem_gb": 32,
                          "nodes": 2, "tasks_per_node": 4, "gpus_per_node": 4}
    executor = slurm_launcher.make_executor(tmp_path / "sweep", "slurm", parameters)
    script = executor._executor._make_submission_file_text("python -m x", "uid")  # the sbatch file submitit writes
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=120", "--mem=32GB"):
        assert f"#SBATCH {line}\n" in script
    cpu = slurm_launcher.executor_parameters(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=4"], options)
    assert (cpu["nodes"], cpu["tasks_per_node"], "gpus_per_node" in cpu) == (1, 4, False)
    assert not (tmp_path / "sweep").exists()  # a SLURM executor writes nothing before it submits


def test_missing_submitit_is_one_line_and_creates_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "submitit", None)  # makes `import submitit` raise ImportError
    for launcher in (["--launcher", "slurm"], ["hydra/launcher=submitit_slurm"]):
        assert main([*launcher, "seed=0,1", "--dir", str(tmp_path / "s")]) == 2
        assert "pip install lepton-transfer[cluster]" in one_error_line(capsys)
    assert not (tmp_path / "s").exists()


def test_no_sbatch_on_path_is_one_line_before_anything_is_submitted(monkeypatch, capsys, tmp_path):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["--launcher", "slurm", "seed=0,1", "--dir", str(tmp_path / "s")]) == 2
    assert "sbatch was not found" in one_error_line(capsys)
    assert not (tmp_path / "s").exists()


def test_unknown_launcher_setting_is_one_line(capsys, tmp_path):
    assert main(["--launcher", "slurm", "hydra.launcher.partitio=gpu", "seed=0", "--dir", str(tmp_path / "s")]) == 2
    assert "hydra.launcher.partitio; known: " in one_error_line(capsys)
    assert main(["hydra.launcher.partition=gpu", "seed=0", "--dir", str(tmp_path / "s")]) == 2
    assert "add --launcher slurm" in one_error_line(capsys)  # a SLURM setting without SLURM


def test_settings_that_disagree_with_the_config_are_one_line(slurm, capsys, tmp_path):
    on_slurm = ["--launcher", "slurm", "trainer=ddp", "seed=0,1", "--dir", str(tmp_path / "s")]
    assert main([*on_slurm, "trainer.devices=2", "hydra.launcher.tasks_per_node=4"]) == 2
    assert "hydra.launcher.tasks_per_node=4 disagrees with trainer.devices=2" in one_error_line(capsys)
    assert main(on_slurm) == 2  # trainer=ddp leaves trainer.devices at auto
    assert "set trainer.devices to a number, not 'auto'" in one_error_line(capsys)
    assert main([*on_slurm, "trainer.devices=2", "hydra.launcher.timeout_min=soon"]) == 2
    assert "timeout_min" in one_error_line(capsys)
    assert not (tmp_path / "s").exists()
    assert not list(slurm.glob("*.state"))  # nothing was submitted


def test_sbatch_refusing_the_jobs_is_one_line(slurm, capsys, tmp_path):
    assert main(["--launcher", "slurm", "hydra.launcher.partition=nope", *JOB, "--dir", str(tmp_path / "s")]) == 2
    assert "sbatch refused the jobs: sbatch: error: invalid partition specified: nope" in one_error_line(capsys)
    assert not list(slurm.glob("*.state"))


def test_a_job_slurm_ends_without_a_result_is_marked_failed(slurm, monkeypatch, capsys, tmp_path):
    import submitit

    monkeypatch.setattr(submitit.SlurmJob, "_results_timeout_s", 0)  # no waiting for a slow shared file system
    sweep_dir = tmp_path / "s"
    assert main(["--launcher", "slurm", "hydra.launcher.setup=[exit 3]", *JOB, "--dir", str(sweep_dir)]) == 1
    assert "FAILED" in capsys.readouterr().out
    (row,) = read_csv(sweep_dir / "leaderboard.csv")
    assert row["failed"] == "1" and "ended without a result (FAILED)" in row["error"]


class _RunsCode:
    """A pickle that runs code when it is loaded: it creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_the_login_node_unpickles_no_result_and_reads_the_run_from_its_json(slurm, monkeypatch, capsys, tmp_path):
    import submitit

    sweep_dir, marker = tmp_path / "sweep", tmp_path / "code-ran"
    monkeypatch.setattr(slurm_launcher, "launch_task", fake_launch_task)  # fake_train.py: no real training
    done = submitit.SlurmJob.done

    def done_then_tampered(job, *args, **kwargs):  # someone who can write to the sweep directory swaps the result
        finished = done(job, *args, **kwargs)
        if finished:
            for path in {job.paths.result_pickle, *(sweep_dir / ".submitit").rglob("*_result.pkl")}:
                path.write_bytes(pickle.dumps(("success", _RunsCode(marker))))
        return finished

    monkeypatch.setattr(submitit.SlurmJob, "done", done_then_tampered)
    assert main(["--launcher", "slurm", "trainer=debug", "method.lr=0.02", "--dir", str(sweep_dir)]) == 0
    assert "1 of 1 runs finished" in capsys.readouterr().out
    assert list((sweep_dir / ".submitit").rglob("*_result.pkl"))  # the malicious pickle was there to read...
    assert not marker.exists()  # ...and nobody read it
    assert stat.S_IMODE((sweep_dir / ".submitit").stat().st_mode) == 0o700
    (row,) = read_csv(sweep_dir / "leaderboard.csv")  # the run's record, from its sweep.json and metrics.json
    assert row["n"] == "1" and row["failed"] == "0"
    assert float(row["target_acc_mean"]) == pytest.approx(fake_metrics({"method.lr": "0.02"})["target/acc"])


def test_child_environment_keeps_slurm_task_variables_for_slurm_tasks_only(monkeypatch):
    for name in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID", "SLURM_JOB_ID", "MASTER_PORT"):
        monkeypatch.setenv(name, "3")
    in_slurm_task = launchers.child_environment(keep_slurm=True)
    assert {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID", "SLURM_JOB_ID"} <= set(in_slurm_task)
    assert "MASTER_PORT" not in in_slurm_task  # Lightning derives it from SLURM_JOB_ID
    # A local run inside a SLURM allocation must not take itself for one of srun's ranks.
    local = launchers.child_environment()
    assert "SLURM_JOB_ID" in local and not {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID"} & set(local)


def test_ctrl_c_cancels_the_slurm_jobs(slurm, monkeypatch, capsys, tmp_path):
    import submitit

    def interrupted(job, *args, **kwargs):  # Ctrl-C while the sweep waits, once the job runs
        deadline = time.time() + 30
        while not (slurm / f"{job.job_id}.pid").exists() and time.time() < deadline:
            time.sleep(0.1)
        raise KeyboardInterrupt

    monkeypatch.setattr(submitit.SlurmJob, "done", interrupted)
    assert main(["--launcher", "slurm", *JOB, "--dir", str(tmp_path / "s")]) == 130
    err = capsys.readouterr().err
    assert "cancelled 1 unfinished job(s)" in err and f"--dir {tmp_path / 's'}" in err
    (state,) = slurm.glob("*.state")
    assert state.read_text() == "CANCELLED"
    process_group = int(state.with_suffix(".pid").read_text())
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(process_group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the cancelled job is still running")


# ---- real runs ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_submitit_local_sweep_gives_the_leaderboard_and_resumes(tmp_path, capsys):
    pytest.importorskip("submitit")
    sweep_dir = tmp_path / "sweep"
    args = ["--launcher", "submitit_local", *JOB, "method.lr=0.01,0.02", "--dir", str(sweep_dir)]
    assert main(args) == 0
    assert "2 to run, 0 already done" in capsys.readouterr().out
    assert_leaderboard_is_the_runs(sweep_dir, rows=2)
    assert any((sweep_dir / ".submitit").rglob("*_result.pkl"))  # the runs went through submitit

    assert main(args) == 0  # the same command again: nothing to run
    assert "0 to run, 2 already done" in capsys.readouterr().out


@pytest.mark.slow
def test_fake_slurm_runs_a_job_array_with_the_settings_asked_for(slurm, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    args = ["--launcher", "slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=7", "--jobs", "1",
            *JOB, "method.lr=0.01,0.02", "--dir", str(sweep_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "submitted 2 jobs to SLURM" in out and "2 of 2 runs finished" in out
    assert_leaderboard_is_the_runs(sweep_dir, rows=2)
    script = sbatch_script(sweep_dir)
    for line in ("--array=0-1%1", "--partition=debug", "--time=7", "--nodes=1", "--ntasks-per-node=1"):
        assert f"#SBATCH {line}\n" in script
    assert "--gpus-per-node" not in script  # trainer=debug runs on the CPU
    assert sorted(path.read_text() for path in slurm.glob("*.state")) == ["COMPLETED", "COMPLETED"]

    assert main(args) == 0  # resume: nothing submitted again
    assert "0 to run, 2 already done" in capsys.readouterr().out
    assert len(list(slurm.glob("*.state"))) == 2


@pytest.mark.slow
def test_fake_slurm_ddp_job_runs_one_task_per_device_and_rank_zero_reports(slurm, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    assert main(["--launcher", "slurm", *DDP, "--dir", str(sweep_dir)]) == 0
    (row,) = assert_leaderboard_is_the_runs(sweep_dir, rows=1)
    assert "#SBATCH --ntasks-per-node=2\n" in sbatch_script(sweep_dir)
    run_dir = Path(row["run_dirs"])
    # srun started 2 tasks; each ran the training with SLURM's variables, as ranks of one DDP run
    assert "16 × 2 ranks" in (run_dir / "sweep.log").read_text()
    assert (run_dir / "sweep_rank1.log").is_file() and (run_dir / "train_rank1.log").is_file()
    assert json.loads((run_dir / "sweep.json").read_text())["status"] == "ok"  # written by rank 0 alone
