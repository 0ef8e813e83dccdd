"""Honest ranking: `lepton sweep` ranks and searches by the unsupervised selection score unless a
ranking on target labels is asked for by name, and then says so.

The sweeps here run tests/helpers/fake_train.py, whose numbers make the two disagree: target
accuracy grows with method.lr, the validator (lower is better) prefers the smallest lr.
"""

from __future__ import annotations

import re

import pytest

from lepton_cli.reporting.leaderboard import ORACLE, build_leaderboard, ranking
from lepton_cli.sweep import main
from lepton_cli.sweep.cli import parse_args
from tests.helpers.fake_train import fake_metrics
from tests.helpers.sweep_fakes import read_csv, use_fake_training

GRID = ["method.lr=0.03,0.01,0.02", "seed=0,1"]


def _record(lr: float, seed: int, metrics: dict) -> dict:
    overrides = [f"method.lr={lr}", f"seed={seed}"]
    return {"overrides": overrides, "group": (overrides[0],), "status": "ok", "metrics": metrics, "error": "",
            "wall_time_s": 1.0, "run_dir": f"r{lr}{seed}"}


def test_default_ranking_reads_no_target_label():
    assert parse_args(["seed=0,1"]).rank_by == "selection" and not ranking().uses_target_labels
    unsupervised = {key: value for key, value in fake_metrics({}).items() if key.startswith("selection/") and "target" not in key}
    # runs whose metrics hold no target number at all still rank, by the validator's score alone
    records = [_record(lr, 0, {**unsupervised, "selection/rank_score": -lr}) for lr in (0.2, 0.1, 0.3)]
    assert [row.settings["method.lr"] for row in build_leaderboard(records, ["method.lr"])] == ["0.1", "0.2", "0.3"]
    # and target numbers, however they are shuffled, change nothing in the order
    for accs in ((0.9, 0.5, 0.1), (0.1, 0.5, 0.9)):
        records = [_record(lr, 0, {**fake_metrics({"method.lr": str(lr)}), "target/acc": acc, "oracle/target/acc": acc})
                   for lr, acc in zip((0.2, 0.1, 0.3), accs)]
        assert [row.settings["method.lr"] for row in build_leaderboard(records, ["method.lr"])] == ["0.1", "0.2", "0.3"]


def test_a_validator_that_reads_target_labels_makes_the_ranking_an_oracle_one():
    metrics = {**fake_metrics({}), "selection/name": ORACLE, "selection/mode": "max", "selection/note": ORACLE}
    rows = build_leaderboard([_record(0.1, 0, metrics)], ["method.lr"])
    assert ranking().label(rows).startswith(f"{ORACLE}: ")
    assert ranking("target/acc").uses_target_labels and ranking("oracle").uses_target_labels
    assert not ranking("-source/acc").uses_target_labels


def test_sweep_ranks_by_the_selection_score_and_labels_all_three_target_numbers(tmp_path, monkeypatch, capsys):
    use_fake_training(monkeypatch)
    assert main([*GRID, "--jobs", "2", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = read_csv(tmp_path / "leaderboard.csv")
    assert [row["method.lr"] for row in table] == ["0.01", "0.02", "0.03"]  # the validator's order, not the labels'
    assert float(table[0]["target_acc_mean"]) < float(table[-1]["target_acc_mean"])  # which disagree
    assert {row["ranked_by"] for row in table} == {"unsupervised selection score (entropy, lower is better)"}
    assert all(row["n"] == "2" for row in table)
    first = table[0]  # mean over its two seeds of what fake_train wrote
    for column, key in (("target_acc_mean", "target/acc"), ("selection_target_acc_mean", "selection/target/acc"),
                        ("oracle_target_acc_mean", "oracle/target/acc")):
        expected = (fake_metrics({"method.lr": "0.01", "seed": "0"})[key] + fake_metrics({"method.lr": "0.01", "seed": "1"})[key]) / 2
        assert float(first[column]) == pytest.approx(expected)
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "Ranked by unsupervised selection score (entropy, lower is better)" in markdown
    for header in ("target acc % (last weights)", "target acc % (validator's pick: selection=entropy)",
                   "target acc % (oracle pick, uses target labels)"):
        assert header in markdown and header in out  # the file and the printed leaderboard
    assert "Ranked by oracle" not in markdown


def test_oracle_ranking_is_asked_for_by_name_and_labelled(tmp_path, monkeypatch, capsys):
    use_fake_training(monkeypatch)
    assert main([*GRID, "--rank", "oracle", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = read_csv(tmp_path / "leaderboard.csv")
    assert [row["method.lr"] for row in table] == ["0.03", "0.02", "0.01"]
    assert {row["ranked_by"] for row in table} == {f"{ORACLE}: oracle/target/acc"}
    assert f"Ranked by {ORACLE}: oracle/target/acc" in (tmp_path / "leaderboard.md").read_text()
    assert ORACLE in out
    # the same runs, ranked on the last epoch's target accuracy: resumed, not rerun, and labelled too
    assert main([*GRID, "--rank-by", "target/acc", "--dir", str(tmp_path)]) == 0
    assert "0 to run, 6 already done" in capsys.readouterr().out
    assert {row["ranked_by"] for row in read_csv(tmp_path / "leaderboard.csv")} == {f"{ORACLE}: target/acc"}


def test_optuna_maximises_the_selection_score_by_default(tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    use_fake_training(monkeypatch)
    assert main(["--optuna", "3", "method.lr=interval(0.001,0.1)", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "maximising unsupervised selection score" in out
    best = re.search(r"best trial: \{'method.lr': '?([0-9.e-]+)'?\} → selection/rank_score (-?[0-9.]+)", out)
    assert best, out
    tried = [float(row["method.lr"]) for row in read_csv(tmp_path / "leaderboard.csv")]
    assert len(tried) == 3 and float(best[1]) == min(tried)  # the validator's favourite, the labels' least favourite
    assert float(best[2]) == pytest.approx(-min(tried), abs=1e-4)


def test_a_ranking_key_no_run_has_is_one_warning_not_a_failure(tmp_path, monkeypatch, capsys):
    use_fake_training(monkeypatch)
    args = ["method.lr=0.01,0.02", "--rank", "source/accc", "--dir", str(tmp_path)]  # a typo of source/acc
    assert main(args) == 0  # the runs finished: none failed
    captured = capsys.readouterr()
    assert "2 of 2 runs finished, 0 failed" in captured.out
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert warnings == [("lepton sweep: warning: 2 of 2 finished run(s) have no finite source/accc in metrics.json "
                         "(no run has it: did you mean --rank source/acc?); they show – and rank last")]
    assert "| – |" in (tmp_path / "leaderboard.md").read_text()
    assert {row["source_accc_mean"] for row in read_csv(tmp_path / "leaderboard.csv")} == {""}
    assert main(args) == 0  # rerun: nothing moved aside, nothing trained again
    assert "0 to run, 2 already done" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.old-*"))


def test_optuna_says_oracle_when_the_runs_choose_selection_oracle(tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    use_fake_training(monkeypatch)
    assert main(["--optuna", "2", "selection=oracle", "method.lr=interval(0.001,0.1)", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"maximising {ORACLE}: unsupervised selection score" in out
    assert re.search(r"best trial: .* → selection/rank_score -?[0-9.]+ \(oracle \(uses target labels\)\)", out), out


def test_optuna_trials_that_ask_the_same_values_share_one_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    use_fake_training(monkeypatch)
    # three trials at once over two values: two of them ask the same, which must not run twice in one directory
    assert main(["--optuna", "3", "--jobs", "3", "method.lr=0.01,0.02", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "is planned already; it runs once" in out
    table = read_csv(tmp_path / "leaderboard.csv")
    run_dirs = [path for path in tmp_path.iterdir() if path.is_dir()]
    assert len(run_dirs) == len(table) == sum(int(row["n"]) for row in table) < 3
    assert "best trial:" in out  # every trial got its value
