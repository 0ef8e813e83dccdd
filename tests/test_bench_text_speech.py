"""scripts/bench_text_speech.py: the issue-18 tables read back finished runs; a method's settings go into
the run name and the overrides; the Amazon table ends with per-method averages beside the paper's."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "bench_text_speech.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_text_speech", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_method_settings_name_the_run_and_set_method_keys():
    name, overrides = _script().method_settings("dann hidden_layers=2 trade_off=1")
    assert name == "dann_hidden_layers2_trade_off1"
    assert overrides == ["method=dann", "method.hidden_layers=2", "method.trade_off=1"]
    assert _script().method_settings("mcc") == ("mcc", ["method=mcc"])


def test_amazon_table_of_finished_runs_with_averages(tmp_path):
    accuracy = {("books_dvd", 0): 0.80, ("books_dvd", 1): 0.82, ("kitchen_books", 0): 0.70, ("kitchen_books", 1): 0.74}
    for (pair, seed), acc in accuracy.items():
        run_dir = tmp_path / "amazon" / f"{pair}_dann_hidden_layers0_seed{seed}"
        run_dir.mkdir(parents=True)
        metrics = {"target/acc": acc, "selection/target/acc": acc - 0.01, "oracle/target/acc": acc + 0.01}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        (run_dir / "bench_cpu_s.txt").write_text("20.0\n")
    out = tmp_path / "table.md"
    subprocess.run([sys.executable, str(SCRIPT), "amazon", "--pairs", "books:dvd", "kitchen:books", "--methods",
                    "dann hidden_layers=0", "--seeds", "0", "1", "--work-dir", str(tmp_path), "--table-only",
                    "--out", str(out)], check=True, capture_output=True, text=True)
    rows = out.read_text().splitlines()
    assert "| B→D dann hidden_layers=0 | 81.0 ± 1.4 | 80.0 ± 1.4 | 82.0 ± 1.4 | 2/2 | 20 | 78.4 / 79.0 |" in rows
    # The mean of the pair means (81.0, 72.0), beside the paper's DANN / shallow NN on the same two pairs
    # ((78.4 + 70.9) / 2 = 74.65 is 74.6 in float).
    assert rows[-1] == "| **average, dann hidden_layers=0** (2 pairs) | 76.5 | 75.5 | 77.5 | 2 seeds | | 74.6 / 74.9 |"


def test_fsdd_table_gives_the_gap_closed_per_seed(tmp_path):
    # seed 0: source-only 40, upper bound 80, adabn 60 → 50%; seed 1: 50, 70, 65 → 75%; seed 2 has no upper bound
    accuracy = {"clean_noisy_source_only": (0.40, 0.50, 0.45), "noisy_noisy_source_only": (0.80, 0.70, None),
                "clean_noisy_adabn": (0.60, 0.65, 0.90)}
    for name, per_seed in accuracy.items():
        for seed, acc in enumerate(per_seed):
            if acc is None:
                continue
            run_dir = tmp_path / "fsdd" / f"{name}_seed{seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "metrics.json").write_text(json.dumps({"target/acc": acc, "selection/target/acc": acc,
                                                              "oracle/target/acc": acc}))
    out = tmp_path / "table.md"
    subprocess.run([sys.executable, str(SCRIPT), "fsdd", "--methods", "source_only", "adabn", "--seeds", "0", "1", "2",
                    "--work-dir", str(tmp_path), "--table-only", "--out", str(out)], check=True, capture_output=True, text=True)
    rows = {row.split(" | ")[0].lstrip("| "): row for row in out.read_text().splitlines() if row.startswith("| ")}
    assert rows["adabn"].endswith("| 3/3 | – | 62.5 ± 17.7 |")  # seeds 0 and 1 only: (50 + 75) / 2
    assert rows["source_only"].endswith("| 0.0 ± 0.0 |")
    assert rows["target supervised (upper bound, uses target labels)"].endswith("| 2/3 | – | 100 |")
