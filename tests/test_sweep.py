"""`lepton sweep`: grid expansion, the leaderboard, resume, failing runs and Optuna.

The tests that train start real `python -m lepton_cli.train` subprocesses (one batch each,
trainer=debug); on 2 shared CPU cores each run costs 10-30 s, so they are marked slow.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lepton_cli.reporting.leaderboard import build_leaderboard, write_leaderboard
from lepton_cli.sweep import cli as sweep_cli
from lepton_cli.sweep import launchers, main, plan, records
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.session import Sweep
from tests.conftest import TINY
from tests.helpers.cli import assert_one_line_error, run_cli
from tests.helpers.fake_train import fake_metrics
from tests.helpers.sweep_fakes import fake_run, read_csv, use_fake_training

JOB = ["trainer=debug", *TINY]


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir())


# ---- no training ----------------------------------------------------------------------------------
def test_grid_expands_with_hydra_sweep_syntax():
    jobs = plan.expand_grid(["method.trade_off=range(0.1,1.1,0.3)", "seed=range(3)"])
    assert len(jobs) == 12
    assert [job[0] for job in jobs[::3]] == [f"method.trade_off={v}" for v in ("0.1", "0.4", "0.7", "1.0")]
    assert [job[1] for job in jobs[:3]] == ["seed=0", "seed=1", "seed=2"]
    # comma lists and choice() multiply; a later override of the same key wins, as in Hydra
    jobs = plan.expand_grid(["method.lr=1e-3,1e-2", "seed=choice(0,1)", "seed=5"])
    assert jobs == [["method.lr=0.001", "seed=5"], ["method.lr=0.01", "seed=5"]]
    # glob() lists a group's options, without the shared _*.yaml files
    methods = [job[0] for job in plan.expand_grid(["method=glob(*)"])]
    assert "method=source_only" in methods and not any("=_" in m for m in methods)


def test_job_digest_ignores_order_and_hydra_settings():
    a = records.job_digest(["method.lr=0.01", "seed=0", "hydra.job.name=x"])
    assert a == records.job_digest(["seed=0", "method.lr=0.01"])
    assert a != records.job_digest(["seed=1", "method.lr=0.01"])


def test_job_digest_is_of_the_composed_config_not_of_its_spelling():
    default = records.job_digest([])
    assert records.job_digest(["method=source_only"]) == default  # the default, written out
    assert records.job_digest(["dataset@source=synth_digits", "method.lr=1e-2"]) == default  # 1e-2 is the default lr
    assert records.job_digest(["method.lr=0.02"]) != default


def test_preset_is_a_grid_that_command_line_overrides_extend(tmp_path):
    options = sweep_cli.parse_args(["sweep=methods_digits", "seed=7", "--dir", str(tmp_path)])
    jobs = plan.expand_grid(options.grid)
    assert len(jobs) == 8 and {job[-1] for job in jobs} == {"seed=7"}
    assert options.sweep_dir == tmp_path and options.rank_by == "selection"  # no target labels (was target/acc)
    assert sweep_cli.parse_args(["hydra.sweep.dir=/x/y", "seed=0,1"]).sweep_dir == Path("/x/y")


def test_bad_grid_is_one_line_error_before_any_run(tmp_path):
    result = run_cli("sweep", "method=source_only,nope", "seed=0,1", "--dir", str(tmp_path / "s"))
    assert_one_line_error(result, "unknown method 'nope'", "source_only")
    assert not (tmp_path / "s").exists()
    for grid in (["method.lr=[1,"], ["method.lr=0.01,abc"], ["method.lr=interval(0,1)"], ["sweep=nope"]):
        assert main([*grid, "--dir", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


def test_sweep_help_is_fast_and_imports_no_torch():
    code = ("import sys, time; t = time.time(); from lepton_cli.cli import main; main(['sweep', '--help']); "
            "assert 'torch' not in sys.modules and 'hydra' not in sys.modules; print(time.time() - t)")
    started = time.time()
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: lepton sweep" in result.stdout and "range(" in result.stdout
    assert time.time() - started < 3  # < 1 s on an idle machine; 2 shared cores make it noisy


def test_child_environment_drops_distributed_variables(monkeypatch):
    for name in ("LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "RANK", "NODE_RANK"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("KEEP_ME", "1")
    environment = launchers.child_environment()
    assert "KEEP_ME" in environment
    assert not {"LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "RANK", "NODE_RANK"} & set(environment)


def _fake_run(sweep_dir: Path, overrides: list[str], acc: float | None) -> Path:
    return fake_run(sweep_dir, overrides, None if acc is None else {**fake_metrics({}), "target/acc": acc})


def test_resume_skips_finished_runs_and_moves_failed_ones_aside(tmp_path):
    jobs = [["method.lr=0.01", "seed=0"], ["method.lr=0.01", "seed=1"], ["method.lr=0.02", "seed=0"]]
    finished = _fake_run(tmp_path, jobs[0], 0.5)
    cut_off = _fake_run(tmp_path, jobs[1], None)  # no metrics.json: failed or interrupted
    keys = plan.varying_keys(jobs)
    assert keys == ["method.lr", "seed"]
    to_run, done = records.plan_runs(jobs, keys, tmp_path, Options())
    assert [job.run_dir for job in done] == [finished]
    assert [job.overrides for job in to_run] == jobs[1:]
    assert not cut_off.exists() and cut_off.with_name(cut_off.name + ".old-1").is_dir()
    # --force reruns the finished run too, keeping the old one beside it
    to_run, done = records.plan_runs(jobs, keys, tmp_path, Options(force=True))
    assert not done and len(to_run) == 3
    assert (tmp_path / (finished.name + ".old-1") / "metrics.json").is_file()


def test_nan_metrics_count_as_not_finished(tmp_path):
    run_dir = _fake_run(tmp_path, ["seed=0"], math.nan)
    assert records.read_result(run_dir) is None


def test_a_run_without_the_ranking_key_is_finished_and_never_moved(tmp_path):
    jobs = [["method.lr=0.01"], ["method.lr=0.02"]]
    no_validation = {"target/acc": 0.6, "source/acc": 0.9}  # no selection/* keys: validation was off
    run_dirs = [fake_run(tmp_path, job, no_validation) for job in jobs]
    for rank_by in ("selection", "source/accc", "-oracle"):
        to_run, done = records.plan_runs(jobs, ["method.lr"], tmp_path, Options(rank_by=rank_by))
        assert not to_run and [job.run_dir for job in done] == run_dirs and {job.record["status"] for job in done} == {"ok"}
    assert not list(tmp_path.glob("*.old-*"))
    fake_run(tmp_path, ["method.lr=0.03"], {"target/acc": math.nan, "selection/rank_score": 1.0})  # no finite target/acc
    to_run, _ = records.plan_runs([["method.lr=0.03"]], ["method.lr"], tmp_path, Options())
    assert len(to_run) == 1 and len(list(tmp_path.glob("*.old-*"))) == 1


def test_jobs_with_one_config_digest_are_one_run(tmp_path, capsys):
    jobs = [["seed=0"], ["seed=0"], ["method=source_only", "seed=0"], ["seed=1"]]  # source_only is the default method
    planned = {}
    to_run, done = records.plan_runs(jobs, ["seed"], tmp_path, Options(), planned=planned)
    assert [job.overrides for job in to_run] == [["seed=0"], ["seed=1"]] and not done
    assert planned[("method=source_only", "seed=0")] is planned[("seed=0",)] is to_run[0]
    out = capsys.readouterr().out
    assert out.count("is planned already") == 2 and "the same config as seed=0" in out
    # a later call sharing `planned` (the next Optuna batch) does not plan them again
    assert records.plan_runs([["seed=1"]], ["seed"], tmp_path, Options(), planned=planned) == ([], [])


def test_grid_with_a_repeated_seed_runs_it_once(tmp_path, monkeypatch, capsys):
    use_fake_training(monkeypatch)
    assert main(["method.lr=0.01", "seed=0,0", "--jobs", "2", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 runs (1 configurations)" in out and "1 to run" in out and "seed=0 is planned already; it runs once" in out
    assert len(run_dirs(tmp_path)) == 1
    (row,) = read_csv(tmp_path / "leaderboard.csv")
    assert row["n"] == "1"


def test_a_null_wall_time_in_sweep_json_falls_back_to_metrics_and_prints_a_dash(tmp_path, capsys):
    # SLURM killed the job after its metrics.json was written: the login node wrote wall_time_s null
    timed = fake_run(tmp_path, ["seed=0"], fake_metrics({}))
    untimed = fake_run(tmp_path, ["seed=1"], {key: value for key, value in fake_metrics({}).items() if key != "wall_time_s"})
    for run_dir in (timed, untimed):
        (run_dir / "sweep.json").write_text(json.dumps({"status": "failed", "wall_time_s": None, "returncode": None}))
    _, done = records.plan_runs([["seed=0"], ["seed=1"]], ["seed"], tmp_path, Options())
    assert [job.record["wall_time_s"] for job in done] == [fake_metrics({})["wall_time_s"], None]
    sweep = Sweep(Options(), ["seed"], tmp_path)
    sweep.jobs = done
    for job in done:
        sweep.report(job, 2)
    out = capsys.readouterr().out
    assert "[1/2] done    seed=0: selection/score 0.0100 (0 s)" in out and "[2/2] done    seed=1: selection/score 0.0100 (–)" in out


def test_leaderboard_groups_seeds_with_sample_std(tmp_path):
    def record(lr, seed, acc, status="ok"):
        overrides = [f"method.lr={lr}", f"seed={seed}"]
        metrics = {"target/acc": acc, "target/f1_macro": acc, "source/acc": 0.9} if status == "ok" else None
        return {"overrides": overrides, "group": (overrides[0],), "status": status, "metrics": metrics,
                "error": "ValueError: boom" if status == "failed" else "", "wall_time_s": 2.0, "run_dir": f"r{lr}{seed}"}

    records = [record(0.1, 0, 0.5), record(0.1, 1, 0.7), record(0.2, 0, 0.8), record(0.3, 0, 0, "failed")]
    rows = build_leaderboard(records, ["method.lr"], "target/acc")  # named: these records have no selection score
    assert [row.settings["method.lr"] for row in rows] == ["0.2", "0.1", "0.3"]  # best first, failed last
    assert rows[1].n == 2 and rows[1].mean("target/acc") == pytest.approx(0.6)
    assert rows[1].std("target/acc") == pytest.approx(0.1414213, rel=1e-5)  # ddof=1
    assert math.isnan(rows[0].std("target/acc")) and rows[2].failed == 1
    assert [r.settings["method.lr"] for r in build_leaderboard(records, ["method.lr"], "-target/acc")][:2] == ["0.1", "0.2"]
    write_leaderboard(rows, tmp_path, "target/acc")
    table = read_csv(tmp_path / "leaderboard.csv")
    assert table[0]["target_acc_std"] == "" and table[0]["n"] == "1"  # n = 1: no std
    assert table[2]["error"] == "ValueError: boom" and table[2]["n"] == "0"
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "| 0.2 | 80.00 ± – |" in markdown and "| 0.1 | 60.00 ± 14.14 |" in markdown
    assert (tmp_path / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"


def test_optuna_missing_is_one_line_with_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` raise ImportError
    assert main(["--optuna", "2", "method.lr=interval(1e-3,1e-1)", "--dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install lepton-transfer[search]" in err
    assert not (tmp_path / "s").exists()


# ---- real runs (subprocesses) ---------------------------------------------------------------------
@pytest.mark.slow
def test_four_run_sweep_gives_two_row_leaderboard_and_resumes(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    args = [*JOB, "method.lr=0.01,0.02", "seed=0,1", "--dir", str(sweep_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 runs (2 configurations)" in out and "4 to run, 0 already done" in out
    assert len(run_dirs(sweep_dir)) == 4
    table = read_csv(sweep_dir / "leaderboard.csv")
    assert len(table) == 2 and {row["n"] for row in table} == {"2"}
    for row in table:
        accs = [json.loads((Path(d) / "metrics.json").read_text())["target/acc"] for d in row["run_dirs"].split(";")]
        assert float(row["target_acc_mean"]) == pytest.approx(sum(accs) / 2)
    # ranked by the unsupervised selection score (no longer by target accuracy)
    assert float(table[0]["selection_rank_score_mean"]) >= float(table[1]["selection_rank_score_mean"])
    assert (sweep_dir / "leaderboard.md").read_text().count("\n| 0.0") == 2
    assert (sweep_dir / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"

    assert main(args) == 0  # the same command again: nothing to run
    assert "0 to run, 4 already done" in capsys.readouterr().out
    assert len(run_dirs(sweep_dir)) == 4


@pytest.mark.slow
def test_failing_configuration_is_marked_and_the_sweep_goes_on(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    # Fails in the run, not before: the config is valid, but selection=source_val (the default) finds no
    # held-out source split. (method.lr=-1 used to fail in the run; the schema now refuses it up front.)
    assert main([*JOB, "data.source_val_fraction=0.1,0", "--jobs", "2", "--dir", str(sweep_dir)]) == 1
    captured = capsys.readouterr()
    assert "1 failed" in captured.out and "failed" in captured.err
    good, bad = read_csv(sweep_dir / "leaderboard.csv")
    assert good["data.source_val_fraction"] == "0.1" and good["n"] == "1"
    assert bad["n"] == "0" and bad["failed"] == "1"
    assert "source_val_fraction" in bad["error"] and "(0, 1)" in bad["error"]  # the run's own error line, not Hydra's boilerplate
    assert bad["error"] in (Path(bad["run_dirs"]) / "sweep.log").read_text()


@pytest.mark.slow
def test_optuna_two_trial_study(tmp_path, capsys):
    pytest.importorskip("optuna")
    sweep_dir = tmp_path / "sweep"
    code = main([*JOB, "--optuna", "2", "method.lr=tag(log,interval(1e-3,1e-1))", "--dir", str(sweep_dir)])
    assert code == 0
    out = capsys.readouterr().out
    assert "Optuna, 2 trials" in out and "best trial: {'method.lr':" in out
    table = read_csv(sweep_dir / "leaderboard.csv")
    assert len(table) == 2 and all(1e-3 <= float(row["method.lr"]) <= 1e-1 for row in table)


def test_hydra_optuna_sweeper_spelling_means_optuna(capsys):
    assert sweep_cli.parse_args(["hydra/sweeper=optuna", "method.lr=interval(0.001,0.1)"]).optuna_trials == 20
    options = sweep_cli.parse_args(["hydra/sweeper=optuna", "hydra.sweeper.n_trials=5", "hydra.sweeper.direction=minimize",
                                "--rank-by", "source/acc", "method.lr=interval(0.001,0.1)"])
    assert (options.optuna_trials, options.rank_by, options.grid) == (5, "-source/acc", ["method.lr=interval(0.001,0.1)"])
    assert sweep_cli.parse_args(["hydra/sweeper=basic", "seed=0,1"]).optuna_trials is None
    assert main(["hydra.sweeper.sampler.seed=3", "seed=0,1"]) == 2
    assert "hydra.sweeper.n_trials=N" in capsys.readouterr().err
