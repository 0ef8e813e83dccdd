"""Validators: score a model at the end of a validation epoch, with or without target labels.

In unsupervised adaptation nobody has target labels to choose the best epoch or configuration.
A validator turns what the model predicts on the validation loaders into one number; `mode`
says whether higher (`max`) or lower (`min`) is better. `selection=` picks one
(conf/selection/*.yaml); `SelectionCallback` (lepton_cli/callbacks/selection.py) logs its score as
`selection/score`, which the ModelCheckpoint monitors.

`score(outputs)` receives, per validation split, a dict of `logits` (N, C), `features` (N, D) and
`labels` (N,) tensors on the CPU. The splits (`DomainAdaptationData.val_splits`):

- `target_val`: a held-out slice of target train, never trained on, labels hidden (-1): what the
  unsupervised validators score, so that the target test images are read once, for the final numbers;
- `source`: source test; `source_val`: a held-out slice of source train, with labels;
- `target`: target test, validated only for `OracleTargetAccuracy` (`uses_target_labels`: research
  only, and labelled "oracle" in every output).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lepton_cli.errors import LeptonError

Outputs = dict[str, dict[str, torch.Tensor]]


class Validator:
    """Base class: `name`, `mode` ("max" or "min") and `score(outputs) -> float`."""

    #: the validation splits `score` reads
    needs: tuple[str, ...] = ("target_val",)
    #: whether the score reads target labels (research only)
    uses_target_labels = False

    def __init__(self, name: str, mode: str):
        if mode not in ("max", "min"):
            raise LeptonError(f"selection.mode must be max or min, got {mode!r}")
        self.name, self.mode = name, mode

    def check(self, available: list[str]) -> None:
        """Fail early, with the fix, when a split the validator needs is not validated."""
        missing = [split for split in self.needs if split not in available]
        if "source_val" in missing:
            raise LeptonError(f"selection={self.name} needs a held-out source split; set data.source_val_fraction "
                              "to a value in (0, 1), e.g. 0.1")
        if "target_val" in missing:
            raise LeptonError(f"selection={self.name} needs a held-out slice of target train; set "
                              "data.target_val_fraction to a value in (0, 1), e.g. 0.1")
        if "target" in missing:
            raise LeptonError(f"selection={self.name} reads the target test labels during validation; build the "
                              "DataModule with validate_target_test=True (lepton train does so for selection=oracle)")
        if missing:
            raise LeptonError(f"selection={self.name} needs the {', '.join(missing)} validation split(s)")

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than `b`."""
        return a > b if self.mode == "max" else a < b

    def score(self, outputs: Outputs) -> float:
        raise NotImplementedError


class SourceValAccuracy(Validator):
    """Accuracy on held-out source images (higher is better): assumes the source error tracks the target's."""

    needs = ("source_val",)

    def score(self, outputs: Outputs) -> float:
        split = outputs["source_val"]
        return float((split["logits"].argmax(1) == split["labels"]).float().mean())


class TargetEntropy(Validator):
    """Mean entropy (nats) of the predictions on held-out target images, lower is better (Morerio
    et al., ICLR 2018)."""

    def score(self, outputs: Outputs) -> float:
        from lepton_cli.losses import entropy

        return float(entropy(outputs["target_val"]["logits"].float()))


class InformationMaximization(Validator):
    """Mutual information between held-out target images and predicted classes, H(E p) − E H(p),
    higher is better: confident and spread over the classes (the negated IM loss of SHOT, Liang et
    al. 2020)."""

    def score(self, outputs: Outputs) -> float:
        from lepton_cli.losses import information_maximization

        return -float(information_maximization(outputs["target_val"]["logits"].float()))


class DeepEmbeddedValidation(Validator):
    """Deep Embedded Validation (You et al., ICML 2019), lower is better.

    A domain classifier on features estimates the density ratio w(x) = p_t(x) / p_s(x) for each
    held-out source image; the importance-weighted source-val loss L_w = w·ℓ estimates the target
    risk, and the control variate w (E w = 1) reduces its variance:

        DEV = mean(L_w) + η·mean(w) − η,   η = −Cov(L_w, w) / Var(w).

    The paper trains the domain classifier on source-train and target features; here logistic
    regression on source-val and held-out target-train (`target_val`) features, with 2-fold
    cross-fitting so that no point is scored by a classifier that saw it.
    """

    needs = ("source_val", "target_val")

    def __init__(self, name: str = "dev", mode: str = "min", max_points: int = 2000, seed: int = 0):
        super().__init__(name, mode)
        self.max_points, self.seed = max_points, seed

    def score(self, outputs: Outputs) -> float:
        source, target = outputs["source_val"], outputs["target_val"]
        losses = F.cross_entropy(source["logits"].float(), source["labels"], reduction="none").numpy()
        return dev_risk(source["features"].float().numpy(), target["features"].float().numpy(), losses,
                        self.max_points, self.seed)


def importance_weights(source_features: np.ndarray, target_features: np.ndarray, max_points: int = 2000,
                       seed: int = 0) -> np.ndarray:
    """w(x) = p_t(x) / p_s(x) at each source point, from a logistic-regression domain classifier:
    w = (n_s / n_t) · P(target | x) / P(source | x). Cross-fitted (2 folds, stratified)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    if len(target_features) > max_points:
        target_features = target_features[rng.choice(len(target_features), max_points, replace=False)]
    features = np.concatenate([source_features, target_features])
    domain = np.r_[np.zeros(len(source_features)), np.ones(len(target_features))]
    p_target = np.empty(len(features))
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    for fit, held in folds.split(features, domain):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        classifier.fit(features[fit], domain[fit])
        p_target[held] = classifier.predict_proba(features[held])[:, 1]
    p_target = np.clip(p_target[: len(source_features)], 1e-6, 1 - 1e-6)
    return (len(source_features) / len(target_features)) * p_target / (1 - p_target)


def dev_risk(source_features: np.ndarray, target_features: np.ndarray, source_losses: np.ndarray,
             max_points: int = 2000, seed: int = 0) -> float:
    """The DEV estimate of the target risk from held-out source losses (see `DeepEmbeddedValidation`)."""
    if len(source_features) > max_points:
        keep = np.random.default_rng(seed).choice(len(source_features), max_points, replace=False)
        source_features, source_losses = source_features[keep], source_losses[keep]
    weights = importance_weights(source_features, target_features, max_points, seed)
    weighted = weights * source_losses
    variance = weights.var(ddof=1) if len(weights) > 1 else 0.0
    eta = -np.cov(weighted, weights, ddof=1)[0, 1] / variance if variance > 1e-12 else 0.0
    risk = float(weighted.mean() + eta * weights.mean() - eta)
    return risk if math.isfinite(risk) else float(source_losses.mean())


class OracleTargetAccuracy(Validator):
    """Target test accuracy: uses target labels, for research only (how good could a choice be)."""

    needs = ("target",)
    uses_target_labels = True

    def score(self, outputs: Outputs) -> float:
        split = outputs["target"]
        return float((split["logits"].argmax(1) == split["labels"]).float().mean())
