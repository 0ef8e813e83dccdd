"""`lepton eval`: the same weights give the same numbers; unsafe or foreign files are refused."""

from __future__ import annotations

import json
import os
import pickle
import re

import pytest
import torch

from lepton_cli.builders.saved_model import load_checkpoint
from lepton_cli.errors import LeptonError
from lepton_cli.evaluate import evaluate
from lepton_cli.evaluate import main as eval_main
from tests.conftest import TINY, compose_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from lepton_cli.train import run

    run_dir = tmp_path_factory.mktemp("eval") / "run"
    metrics = run(compose_config([*TINY, "report=false"], run_dir))
    return metrics, run_dir


def test_eval_of_the_last_checkpoint_reproduces_the_runs_target_metrics(tiny_run, tmp_path):
    metrics, run_dir = tiny_run
    assert not (run_dir / "report").exists() and not (run_dir / "report.md").exists()  # report=false
    result = evaluate(str(run_dir / "checkpoints" / "last.ckpt"), output_dir=str(tmp_path), quiet=True)
    for key in ("acc", "f1_macro", "recall_macro"):
        assert result[f"target/{key}"] == pytest.approx(metrics[f"target/{key}"], abs=1e-6)
    assert result["target/per_class_acc"] == pytest.approx(metrics["target/per_class_acc"], abs=1e-6)
    on_disk = json.loads((tmp_path / "eval.json").read_text())
    assert on_disk["target/acc"] == result["target/acc"] and on_disk["classes"] == metrics["classes"]


def test_eval_by_target_name_writes_eval_json_beside_the_checkpoint(tiny_run, capsys):
    metrics, run_dir = tiny_run
    assert eval_main([f"checkpoint={run_dir / 'checkpoints' / 'last.ckpt'}", "target=digits", "data.eval_batch_size=64"]) == 0
    out = capsys.readouterr().out
    assert "target test" in out and "accuracy" in out  # the rich metrics table
    on_disk = json.loads((run_dir / "checkpoints" / "eval.json").read_text())
    assert on_disk["target"] == "digits" and on_disk["target/acc"] == pytest.approx(metrics["target/acc"], abs=1e-6)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path, capsys):
    marker, path = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "lepton_config": {}, "payload": _RunsCode(marker)}, path)
    assert eval_main([f"checkpoint={path}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused to load" in lines[0] and "weights_only" in lines[0]
    plain_pickle = tmp_path / "evil.pkl"
    plain_pickle.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(LeptonError, match="refused to load|not a readable checkpoint"):
        load_checkpoint(plain_pickle)
    assert not marker.exists()


def test_missing_or_foreign_files_are_one_line_errors(tmp_path):
    with pytest.raises(LeptonError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    with pytest.raises(LeptonError, match="not a Lepton checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(LeptonError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")


def test_unknown_target_and_unknown_key_name_the_fix(tiny_run):
    _, run_dir = tiny_run
    checkpoint = str(run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(LeptonError, match="unknown target 'nope'; choose one of"):
        evaluate(checkpoint, target="nope", quiet=True)
    with pytest.raises(LeptonError, match="data.nope"):
        evaluate(checkpoint, overrides=["data.nope=1"], quiet=True)


def test_eval_with_an_attack_reports_robust_accuracy_beside_clean_accuracy(tiny_run, tmp_path, capsys):
    metrics, run_dir = tiny_run
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert eval_main([f"checkpoint={checkpoint}", "attack=pgd", "attack.eps=0.2", "attack.steps=3",
                      f"hydra.run.dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "robust accuracy under pgd (eps=0.2, 3 steps, L-inf, images in [0, 1])" in out
    pgd = json.loads((tmp_path / "eval.json").read_text())
    assert pgd["attack"] == {"name": "pgd", "eps": 0.2, "steps": 3, "step_size": None}
    assert pgd["target/acc"] == pytest.approx(metrics["target/acc"], abs=1e-6)  # clean accuracy unchanged
    assert pgd["target/robust_acc"] < pgd["target/acc"]  # eps = 0.2 of the [0, 1] range breaks a tiny model


@pytest.mark.parametrize(("args", "message"), [
    (["attack=cw", "attack.eps=0.1"], "attack= must be one of fgsm, pgd"),
    (["attack=pgd"], "needs its budget: attack.eps=E"),
    (["attack=pgd", "attack.eps=8"], r"attack.eps must be in \(0, 1\]"),
    (["attack=fgsm", "attack.eps=0.1", "attack.steps=5"], "attack=fgsm is one step"),
    (["attack=pgd", "attack.eps=0.1", "attack.steps=ten"], "attack.steps='ten' is not an integer"),
])
def test_bad_attack_settings_are_one_line_errors(args, message, capsys):
    assert eval_main(["checkpoint=never-read.ckpt", *args]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
