"""scripts/results_tables.py: the docs' results tables come from committed leaderboards, by one command."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "results_tables.py"
# A leaderboard as `lepton sweep` writes it (lepton_cli/reporting/leaderboard.py): fractions, std empty for n = 1.
CSV = """method,ranked_by,selection_score_mean,selection_score_std,target_acc_mean,target_acc_std,selection_target_acc_mean,selection_target_acc_std,oracle_target_acc_mean,oracle_target_acc_std,selection,n,wall_time_s_mean,failed,pending,error,run_dirs
cdan,"unsupervised selection score (ims, higher is better)",0.5,0.1,0.9,0.02,0.88,0.01,0.93,0.005,"ims, higher is better",3,120.4,0,0,,a
source_only,"unsupervised selection score (ims, higher is better)",0.4,,0.7,,0.7,,0.71,,"ims, higher is better",1,60,0,2,,b
"""
SPEC = """tiny:
  csv: tiny.csv
  title: MNIST → USPS, tiny
  command: lepton sweep experiment=digits/mnist_usps method=source_only,cdan seed=0,1,2
  machine: 2-core CPU
  date: 2026-11-30
  budget: 200 steps
  published:
    cdan: 96.0 (TLlib)
  notes:
    - A note under the table.
"""
DOC = "# Title\n\nBefore.\n\n<!-- results:tiny start -->\nstale\n<!-- results:tiny end -->\n\nAfter.\n"


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def results(tmp_path) -> Path:
    (tmp_path / "tiny.csv").write_text(CSV)
    (tmp_path / "tables.yaml").write_text(SPEC)
    (tmp_path / "doc.md").write_text(DOC)
    return tmp_path


def run(script, results, *flags):
    return script.main(["--results", str(results), "--docs", str(results / "doc.md"), *flags])


def test_the_table_is_written_between_its_markers_and_check_tells_stale_from_current(script, results, capsys):
    assert run(script, results, "--check") == 1  # "stale" is not the table
    assert "out of date" in capsys.readouterr().err
    assert run(script, results) == 0
    text = (results / "doc.md").read_text()
    assert text.startswith("# Title\n\nBefore.\n\n<!-- results:tiny start -->\n") and text.endswith("end -->\n\nAfter.\n")
    assert "stale" not in text
    # Every column says which selection made it; mean ± std in percent; n = 1 has no std; pending runs are shown.
    assert "target acc % (validator's pick: selection=ims)" in text and "oracle pick, uses target labels" in text
    assert "| cdan | 90.0 ± 2.0 | 88.0 ± 1.0 | 93.0 ± 0.5 | 3 ok | 120 s | 96.0 (TLlib) |" in text
    assert "| source_only | 70.0 ± – | 70.0 ± – | 71.0 ± – | 1 ok, 2 pending | 60 s | – |" in text
    assert "lepton sweep experiment=digits/mnist_usps" in text and "2-core CPU" in text and "200 steps" in text
    assert run(script, results, "--check") == 0 and run(script, results) == 0
    assert (results / "doc.md").read_text() == text  # rewriting is idempotent

    (results / "tiny.csv").write_text(CSV.replace("0.9,0.02", "0.91,0.02"))  # a new leaderboard
    assert run(script, results, "--check") == 1


@pytest.mark.parametrize("change,message", [
    (lambda r: (r / "doc.md").write_text("<!-- results:tiny start -->\nx\n"), "results:tiny has no end marker"),
    (lambda r: (r / "doc.md").write_text("<!-- results:other start -->\n<!-- results:other end -->\n"),
     "results:other names no table"),
    (lambda r: (r / "tiny.csv").unlink(), "tiny.csv is missing"),
    (lambda r: (r / "tables.yaml").write_text(SPEC.replace("  machine: 2-core CPU\n", "")), "table tiny has no machine"),
    (lambda r: (r / "tables.yaml").write_text(SPEC + "  bad: a: b\n"), "tables.yaml is not valid YAML"),
    (lambda r: (r / "doc.md").unlink(), "doc.md does not exist"),
])
def test_a_broken_input_is_one_line_naming_the_file(script, results, capsys, change, message):
    change(results)
    assert run(script, results) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
