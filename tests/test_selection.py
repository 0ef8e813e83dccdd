"""Model selection without target labels: the validators, and the checkpoint each one picks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lepton_cli.errors import LeptonError
from lepton_cli.selection import (
    DeepEmbeddedValidation,
    InformationMaximization,
    OracleTargetAccuracy,
    SourceValAccuracy,
    TargetEntropy,
    dev_risk,
    importance_weights,
)


def _target(logits: torch.Tensor) -> dict:
    # Held-out target train images carry no labels (-1): the unsupervised validators must not need them.
    return {"target_val": {"logits": logits, "features": logits, "labels": torch.full((len(logits),), -1)}}


def test_entropy_and_ims_prefer_confident_predictions_to_uniform_ones():
    classes = torch.arange(40) % 4
    confident = 10.0 * torch.nn.functional.one_hot(classes, 4).float()  # confident and spread over the classes
    uniform = torch.zeros(40, 4)
    entropy, ims = TargetEntropy("entropy", "min"), InformationMaximization("ims", "max")
    assert entropy.better(entropy.score(_target(confident)), entropy.score(_target(uniform)))
    assert entropy.score(_target(uniform)) == pytest.approx(math.log(4))
    assert ims.better(ims.score(_target(confident)), ims.score(_target(uniform)))
    assert ims.score(_target(confident)) == pytest.approx(math.log(4), abs=1e-2)  # I(x; y) = H(y) = log C
    collapsed = 10.0 * torch.nn.functional.one_hot(torch.zeros(40, dtype=torch.long), 4).float()
    assert ims.better(ims.score(_target(confident)), ims.score(_target(collapsed)))  # diversity counts too


def test_accuracy_validators_count_correct_predictions():
    logits = torch.eye(3).repeat(2, 1)
    labels = torch.tensor([0, 1, 2, 0, 0, 0])
    split = {"logits": logits, "features": logits, "labels": labels}
    assert SourceValAccuracy("source_val", "max").score({"source_val": split}) == pytest.approx(4 / 6)
    oracle = OracleTargetAccuracy("oracle (uses target labels)", "max")
    assert oracle.uses_target_labels and oracle.score({"target": split}) == pytest.approx(4 / 6)


def test_dev_on_identical_distributions_gives_weights_near_one_and_the_mean_loss():
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(600, 5)), rng.normal(size=(600, 5))
    losses = rng.exponential(1.0, size=600)
    weights = importance_weights(source, target)
    assert abs(weights.mean() - 1) < 0.05 and np.median(np.abs(weights - 1)) < 0.2  # finite-sample noise only
    assert dev_risk(source, target, losses) == pytest.approx(losses.mean(), rel=0.1)


def test_dev_weights_the_source_points_that_look_like_the_target():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(800, 2))
    target = rng.normal(size=(800, 2)) + np.array([1.5, 0.0])
    weights = importance_weights(source, target)
    assert np.corrcoef(source[:, 0], weights)[0, 1] > 0.5  # more weight towards the shifted side
    # Losses high exactly where the target lies: DEV sees a higher risk than the plain source mean.
    losses = (source[:, 0] > 0.75).astype(float)
    assert dev_risk(source, target, losses) > losses.mean() + 0.1
    validator = DeepEmbeddedValidation()
    logits = torch.randn(800, 3)
    outputs = {"source_val": {"logits": logits, "features": torch.from_numpy(source).float(), "labels": torch.zeros(800, dtype=torch.long)},
               "target_val": {"logits": logits, "features": torch.from_numpy(target).float(), "labels": torch.full((800,), -1)}}
    assert validator.mode == "min" and math.isfinite(validator.score(outputs))


@pytest.mark.parametrize("validator", [TargetEntropy("entropy", "min"), InformationMaximization("ims", "max"),
                                       DeepEmbeddedValidation()])
def test_unsupervised_validators_never_read_the_target_test_split(validator):
    assert "target" not in validator.needs and not validator.uses_target_labels
    logits = torch.randn(50, 4)
    held_out = {"logits": logits, "features": logits, "labels": torch.full((50,), -1)}
    test = {"logits": torch.randn(50, 4), "features": torch.randn(50, 4), "labels": torch.zeros(50, dtype=torch.long)}
    outputs = {"target_val": held_out, "source_val": {**held_out, "labels": torch.zeros(50, dtype=torch.long)}}
    # Whatever the target test split holds, the score is the same: it is not read.
    assert validator.score(outputs) == validator.score({**outputs, "target": test})
    with pytest.raises(LeptonError, match="data.target_val_fraction"):
        validator.check(["source", "source_val"])


def test_oracle_needs_target_test_in_validation_and_says_so():
    oracle = OracleTargetAccuracy("oracle (uses target labels)", "max")
    assert oracle.needs == ("target",) and oracle.uses_target_labels
    with pytest.raises(LeptonError, match="validate_target_test"):
        oracle.check(["target_val", "source"])


def test_validator_that_needs_a_held_out_source_split_says_how_to_get_one():
    with pytest.raises(LeptonError, match="data.source_val_fraction"):
        SourceValAccuracy("source_val", "max").check(["target", "source"])


@pytest.mark.slow  # five tiny runs
@pytest.mark.parametrize("name", ["source_val", "entropy", "ims", "dev", "oracle"])
def test_each_validator_picks_a_checkpoint_on_a_tiny_run(run_experiment, name):
    metrics, run_dir = run_experiment(f"selection={name}", "trainer.max_epochs=2", "data.steps_per_epoch=2", "report=false")
    assert metrics["selection/name"].startswith(name)
    assert math.isfinite(metrics["selection/score"]) and math.isfinite(metrics["selection/rank_score"])
    history = metrics["selection/history"]
    assert [e["epoch"] for e in history] == [0, 1] and all(math.isfinite(e["score"]) for e in history)
    # ModelCheckpoint monitored selection/score: its "best" is the validator's pick.
    assert (run_dir / "checkpoints" / f"best-epoch={metrics['selection/epoch']}.ckpt").is_file()
    assert metrics["target/test_size"] > 0 and metrics["source/test_size"] > 0
    # The validator's pick is its best score, whatever target accuracy says; target test is read per
    # epoch only for the oracle's column (labelled), which no callback may watch (schema.validate).
    best = (max if metrics["selection/mode"] == "max" else min)(e["score"] for e in history)
    picked = history[metrics["selection/epoch"]]
    assert picked["score"] == best
    assert metrics["selection/target/acc"] == picked["target/acc"]
    assert metrics["oracle/target/acc"] == max(e["target/acc"] for e in history)
    # The last epoch's validation on the target test split saw the same weights as the final test.
    assert history[-1]["target/acc"] == pytest.approx(metrics["target/acc"], abs=1e-6)
    if name == "oracle":
        assert metrics["selection/name"] == "oracle (uses target labels)"
        assert metrics["selection/epoch"] == metrics["oracle/epoch"]
