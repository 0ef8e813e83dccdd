"""The sweep directory is safe: one sweep per directory at a time, no run directory that a live
process holds is ever moved, and trainings die with the sweep (SIGTERM, Ctrl-C, even SIGKILL).

Real process trees: `python -m tests.helpers.sweep_fakes` is `lepton sweep` whose trainings are
tests/helpers/fake_train.py (holds its run directory's lock and sleeps, like a training).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from lepton_cli.io import directory_lock, is_locked
from lepton_cli.sweep import main, plan, records
from lepton_cli.sweep.options import Options
from tests.helpers import sweep_fakes as fakes
from tests.helpers.cli import assert_one_line_error, run_cli

JOBS = [["method.lr=0.01"], ["method.lr=0.02"]]


def start_fake_sweep(sweep_dir: Path, *grid: str, seconds: float = 120) -> subprocess.Popen:
    """A sweep in its own session (as a shell starts a command), trainings that run `seconds`."""
    return subprocess.Popen(fakes.fake_sweep_process_command(*grid, "--jobs", "2", "--dir", str(sweep_dir)), cwd=fakes.REPOSITORY,
                            env=fakes.fake_sweep_environment(seconds), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def training_pids(sweep_dir: Path, count: int, sweep: subprocess.Popen) -> list[int]:
    def started() -> bool:
        assert sweep.poll() is None, sweep.communicate()
        return len(list(sweep_dir.glob("*/fake_train.pid"))) == count

    fakes.wait_for(started, 60, f"{count} trainings to start")
    return [int(path.read_text()) for path in sweep_dir.glob("*/fake_train.pid")]


def test_a_run_directory_a_live_process_holds_is_never_moved_aside(tmp_path, monkeypatch, capsys):
    held = fakes.fake_run(tmp_path, JOBS[0], None)  # cut off: a sweep would move it aside and rerun it...
    before = fakes.snapshot(held)
    keys = plan.varying_keys(JOBS)
    with directory_lock(held, "run directory"):  # ...but a training still runs in it
        for force in (False, True):
            to_run, kept = records.plan_runs(JOBS, keys, tmp_path, Options(force=force))
            assert [job.overrides for job in to_run] == [JOBS[1]]
            assert kept[0].run_dir == held and kept[0].record["status"] == "busy"
        assert held.is_dir() and not list(tmp_path.glob("*.old-*"))
        fakes.use_fake_training(monkeypatch)
        assert main(["method.lr=0.01,0.02", "--dir", str(tmp_path)]) == 1  # not every run finished
        out = capsys.readouterr().out
        assert "1 run(s) still running in another process, left alone" in out and "1 still running in another process" in out
        busy, done = sorted(fakes.read_csv(tmp_path / "leaderboard.csv"), key=lambda row: row["method.lr"])
        assert busy["n"] == "0" and busy["pending"] == "1" and "still running in another process" in busy["error"]
        assert done["n"] == "1"
        assert fakes.snapshot(held) == before | {".lepton.lock": fakes.snapshot(held)[".lepton.lock"]}  # only the lock we took
    # once the process has let go, the cut-off run is moved aside and rerun as before
    to_run, _ = records.plan_runs(JOBS[:1], keys, tmp_path, Options())
    assert len(to_run) == 1 and held.with_name(held.name + ".old-1").is_dir()


def test_a_second_sweep_on_the_same_directory_stops_with_one_line_and_touches_nothing(tmp_path):
    sweep_dir = tmp_path / "sweep"
    stale = fakes.fake_run(sweep_dir, ["method.lr=0.03"], None)  # the second sweep would move this aside
    first = start_fake_sweep(sweep_dir, "method.lr=0.01")
    try:
        training_pids(sweep_dir, 1, first)
        before = fakes.snapshot(sweep_dir)
        result = run_cli("sweep", "method.lr=0.01,0.03", "--dir", str(sweep_dir))
        assert_one_line_error(result, f"sweep directory {sweep_dir} is in use by another Lepton process")
        assert fakes.snapshot(sweep_dir) == before and stale.is_dir()
    finally:
        first.terminate()
        first.communicate(timeout=60)


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_stopping_the_sweep_stops_its_trainings_and_a_rerun_resumes(tmp_path, monkeypatch, capsys, how):
    sweep = start_fake_sweep(tmp_path, "method.lr=0.01,0.02")
    pids = training_pids(tmp_path, 2, sweep)
    assert all(os.getpgid(pid) == pid for pid in pids)  # each in its own process group: Ctrl-C reaches the sweep alone
    if how == "SIGTERM":
        sweep.send_signal(signal.SIGTERM)
    else:
        os.killpg(sweep.pid, signal.SIGINT)  # what a terminal does: the foreground process group gets SIGINT
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == (143 if how == "SIGTERM" else 130), err
    assert "stopping 2 running training(s)" in err and f"rerun with --dir {tmp_path} to resume" in err
    assert not any(fakes.is_running(pid) for pid in pids)
    assert not any(is_locked(path.parent) for path in tmp_path.glob("*/fake_train.pid"))
    fakes.use_fake_training(monkeypatch)
    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "0")
    assert main(["method.lr=0.01,0.02", "--dir", str(tmp_path)]) == 0  # the stopped runs start again
    assert "2 to run, 0 already done" in capsys.readouterr().out
    assert len(list(tmp_path.glob("*.old-1"))) == 2


def test_kill_9_of_the_sweep_ends_its_trainings(tmp_path):
    sweep = start_fake_sweep(tmp_path, "method.lr=0.01,0.02")
    pids = training_pids(tmp_path, 2, sweep)
    sweep.kill()
    sweep.communicate(timeout=60)
    fakes.wait_for(lambda: not any(fakes.is_running(pid) for pid in pids), 10, "the trainings to end after kill -9 of the sweep")
    assert not any(is_locked(path.parent) for path in tmp_path.glob("*/fake_train.pid"))

