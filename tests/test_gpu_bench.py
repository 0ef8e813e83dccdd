"""scripts/gpu_bench.sh, the one-call GPU benchmark: its `--cpu` dry run takes every part's code path
on fake MNIST/USPS files and writes the Markdown and JSON a GPU session will read; a part that fails
is recorded and the others still run; bad arguments stop it with one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.data.fake_files import write_mnist, write_usps

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_bench.sh"
OVERHEAD_PARTS = {"overhead_fp32": ("32-true", []), "overhead_bf16": ("bf16-mixed", []),
                  "compile": ("bf16-mixed", ["trainer.compile=true"]),
                  "reduce_overhead": ("bf16-mixed", ["trainer.compile=reduce-overhead"]),
                  "channels_last_off": ("bf16-mixed", ["trainer.channels_last=false"]),
                  "channels_last_on": ("bf16-mixed", ["trainer.channels_last=true"])}


def test_bad_arguments_stop_with_one_line(tmp_path):
    for args, message in ((["--cpu"], "--out DIR is required"), (["--out", str(tmp_path), "--fast"], "unknown argument --fast")):
        result = subprocess.run(["bash", str(SCRIPT), *args], check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [f"gpu_bench.sh: {message} (see --help)"]
    (tmp_path / "results.md").write_text("earlier results")  # the user's: never overwritten
    result = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path), "--cpu"], check=False, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "already holds files" in result.stderr
    assert (tmp_path / "results.md").read_text() == "earlier results"


@pytest.mark.slow  # ten Python processes that each import torch and Lightning: 45 min at a load of 19 on 2 cores
def test_cpu_dry_run_writes_every_part_and_records_a_failure(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    write_mnist(data, compressed="gz")  # the official file names, as shared/data holds them
    write_usps(data)
    result = subprocess.run(["bash", str(SCRIPT), "--out", str(out), "--cpu", "--data", str(data), "--best", "no_such_method"],
                            check=False, capture_output=True, text=True, timeout=4 * 3600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "results.json", "results.md"]
    results = json.loads((out / "results.json").read_text())
    parts = results["parts"]
    assert set(parts) == {*OVERHEAD_PARTS, "tta_dann", "tta_no_such_method"}
    assert results["device"].startswith("CPU dry run") and results["command"].endswith("--best no_such_method")

    markdown = (out / "results.md").read_text()
    for name, (precision, extra) in OVERHEAD_PARTS.items():
        assert parts[name]["status"] == "ok", parts[name]
        rows = parts[name]["rows"]
        assert {row["method"] for row in rows} == ({"source_only", "dann"} if name in ("overhead_fp32", "overhead_bf16", "reduce_overhead")
                                                    else {"dann"})
        for row in rows:
            assert (row["precision"], row["extra"], row["trainer"]) == (precision, extra, "cpu")
            assert row["channels"] == (3 if name.startswith("channels_last") else 1)
            assert row["handwritten_median"] > 0 and row["lepton_median"] > 0
            assert row["ratio_median"] == pytest.approx(row["lepton_median"] / row["handwritten_median"], rel=0.002)
            assert f"| {name} | {row['method']} | {' '.join([precision, *(['3 channels'] if row['channels'] == 3 else []), *extra])} |" in markdown
    # each row judged against its own target: a CPU is nowhere near 150,000 images/s with CUDA graphs
    assert all(row["target"] == "≥ 150,000 images/s" and row["met"] is False for row in parts["reduce_overhead"]["rows"])
    assert all(row["target"] == "≥ 0.9× eager loop" for row in parts["overhead_fp32"]["rows"])

    tta = parts["tta_dann"]
    assert tta["status"] == "ok" and tta["steps"] == 2 and 0 <= tta["target_acc"] <= 1
    assert tta["seconds"] >= tta["train_wall_time_s"] > 0  # from the command: start-up included
    assert f"| tta_dann | dann | {tta['seconds']:.1f} | {100 * tta['target_acc']:.1f} |" in markdown
    assert parts["tta_no_such_method"] == {"part": "tta_no_such_method", "status": "failed", "reason": "exit 1",
                                           "seconds": parts["tta_no_such_method"]["seconds"]}
    assert "- tta_no_such_method: failed, exit 1" in markdown
    assert "=== tta_no_such_method" in (out / "log.txt").read_text()
