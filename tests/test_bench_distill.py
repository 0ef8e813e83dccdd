"""scripts/bench_distill.py: finished runs are read (not retrained) with the CPU seconds they cost,
and the table gives mean ± std over seeds with a CPU column."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "bench_distill.py"


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location("bench_distill", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished_run(run_dir: Path, acc: float, cpu_s: float) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"target/acc": acc, "selection/target/acc": acc,
                                                      "oracle/target/acc": acc + 0.01, "wall_time_s": 10.0}))
    (run_dir / "bench_cpu_s.txt").write_text(f"{cpu_s}\n")


def test_a_new_run_records_the_cpu_seconds_of_its_training_process(script, tmp_path, monkeypatch):
    def train(overrides):  # stands in for api.train: a child process that burns CPU
        subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"],
                       check=True)
        return {"target/acc": 0.5, "run_dir": overrides[-1].partition("=")[2]}

    monkeypatch.setattr(script.api, "train", train)
    metrics = script.run_once(tmp_path / "run", ["method=distill"])
    assert metrics["cpu_s"] >= 0.3
    assert float((tmp_path / "run" / "bench_cpu_s.txt").read_text()) == pytest.approx(metrics["cpu_s"], abs=0.05)


def test_finished_runs_are_read_and_summarised_over_seeds(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(script.api, "train", lambda overrides: pytest.fail("a finished run was trained again"))
    monkeypatch.setattr(script, "parameters", lambda run_dir: 560_000)
    for seed, (acc, cpu) in enumerate([(0.80, 100.0), (0.90, 300.0)]):
        finished_run(tmp_path / f"student_alone_seed{seed}", acc, cpu)
    monkeypatch.setattr(sys, "argv", ["bench_distill.py", "--seeds", "0", "1", "--only", "none", "--work-dir", str(tmp_path)])
    script.main()
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| student small_cnn, source only")]
    # mean ± sample std of 80 and 90; the oracle 1 point higher; CPU mean of 100 and 300 s; 2 of 2 seeds
    assert row == "| student small_cnn, source only | 0.56 M | 85.0 ± 7.1 | 85.0 ± 7.1 | 86.0 ± 7.1 | 10 | 200 | 2/2 |"
