"""scripts/bench_methods.py is a thin use of the sweep package: its table, from real sweeps (with
tests/helpers/fake_train.py as the training), resumed and read back without training."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from tests.helpers.fake_train import fake_metrics
from tests.helpers.sweep_fakes import use_fake_training

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_methods.py"


def bench(monkeypatch, capsys, *args: str) -> list[str]:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]


@pytest.mark.slow  # three sweeps' worth of config composition: ~15 s on 2 shared cores
def test_bench_table_from_two_sweeps_then_without_training(tmp_path, monkeypatch, capsys):
    use_fake_training(monkeypatch)
    work = tmp_path / "bench"
    # nothing there yet and --no-train: "not run", and nothing written
    table = bench(monkeypatch, capsys, "--methods", "source_only", "dann", "--seeds", "0", "--work-dir", str(work), "--no-train")
    nothing = " | ".join(["not run"] * 5)
    assert table[0].startswith("| method | target acc % (last weights) | target acc % (validator's pick: source_val) |")
    assert table[1:] == [f"| source_only | {nothing} | – | 0/1 |", f"| dann | {nothing} | – | 0/1 |",
                         f"| upper bound (labelled target) | {nothing} | – | 0/1 |"]
    assert not work.exists()
    args = ["--methods", "source_only", "dann", "--seeds", "0", "1", "--extra", "method.lr=0.02", "--work-dir", str(work),
            "--out", str(tmp_path / "table.md")]
    table = bench(monkeypatch, capsys, *args)
    assert table[0] == ("| method | target acc % (last weights) | target acc % (validator's pick: entropy) | "
                        "target acc % (oracle pick, uses target labels) | target macro F1 % (last) | source acc % | "
                        "wall time s (per run) | runs ok |")
    accs = [100 * fake_metrics({"method.lr": "0.02", "seed": seed})["target/acc"] for seed in ("0", "1")]
    mean, std = sum(accs) / 2, abs(accs[0] - accs[1]) / 2 ** 0.5
    assert table[1] == (f"| source_only | {mean:.1f} ± {std:.1f} | {mean - 1:.1f} ± {std:.1f} | {mean + 1:.1f} ± {std:.1f} | "
                        f"{mean - 5:.1f} ± {std:.1f} | 90.0 ± 0.0 | 0 | 2/2 |")
    assert [row.split(" | ")[0] for row in table[1:]] == ["| source_only", "| dann", "| upper bound (labelled target)"]
    assert "| dann |" in (tmp_path / "table.md").read_text()
    assert (work / "methods" / "leaderboard.csv").is_file() and (work / "upper_bound" / "leaderboard.csv").is_file()
    assert bench(monkeypatch, capsys, *args, "--no-train") == table  # read back: the same numbers, nothing rerun
    # the methods split over two work dirs, tabulated together without training
    other = tmp_path / "bench2"
    bench(monkeypatch, capsys, "--methods", "dann", "--seeds", "0", "1", "--extra", "method.lr=0.02", "--work-dir", str(other),
          "--upper-bound")
    both = ["--methods", "source_only", "dann", "--seeds", "0", "1", "--extra", "method.lr=0.02", "--no-train"]
    assert bench(monkeypatch, capsys, *both, "--work-dir", str(other), str(work)) == table
    assert bench(monkeypatch, capsys, *both, "--work-dir", str(other))[1:] == [
        f"| source_only | {' | '.join(['not run'] * 5)} | – | 0/2 |", table[2], f"| upper bound (labelled target) | {' | '.join(['not run'] * 5)} | – | 0/2 |"]
