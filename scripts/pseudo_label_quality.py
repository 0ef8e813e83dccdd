#!/usr/bin/env python
"""How good would a source-trained model's pseudo-labels be on the target training split?

A diagnostic for self-training (`method=pseudo_label`): it builds the teacher `lepton train` would
build (trained on the source, or read from the teacher cache), predicts the target training images
and compares the predictions with the true target labels, which Lepton itself never reads during
unsupervised training. Prints the accuracy of all predictions, the share kept and its accuracy at
each confidence threshold, how the confident predictions spread over the classes, and the
confusion matrix.

    python scripts/pseudo_label_quality.py                        # the default experiment
    python scripts/pseudo_label_quality.py source=mnist target=usps data.root=DATA
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99)


def main(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from lepton_cli.builders.data import build_datamodule
    from lepton_cli.builders.teacher import build_teacher
    from lepton_cli.config import conf_dir, rewrite_overrides
    from lepton_cli.data.datamodule import to_tensor
    from lepton_cli.models.backbones import backbone_normalization

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["method=distill", *rewrite_overrides(overrides)])
    datamodule = build_datamodule(cfg)
    teacher = build_teacher(cfg, datamodule)
    target = instantiate(cfg.target)
    arrays = datamodule.alignment.apply(target.load("train", datamodule.root, cfg.data.download, datamodule.cache_dir))
    images, labels = to_tensor(arrays, datamodule.image_size, datamodule.channels)
    weak = instantiate(cfg.augment.weak)
    weak.use_backbone_normalization(backbone_normalization(teacher.classifier.backbone))  # `auto`: as in training
    normalize = weak.normalize
    with torch.no_grad():
        logits = torch.cat([teacher(normalize(images[i:i + 512])) for i in range(0, len(images), 512)])
    confidence, predictions = F.softmax(logits, dim=1).max(dim=1)
    correct = predictions == labels
    classes = len(datamodule.classes)

    print(f"target train: {len(labels)} images; the source-trained model labels {correct.float().mean():.1%} correctly")
    for threshold in THRESHOLDS:
        kept = confidence >= threshold
        accuracy = correct[kept].float().mean().item() if kept.any() else float("nan")
        print(f"  confidence >= {threshold}: {kept.float().mean():.1%} kept, {accuracy:.1%} of them correct, "
              f"per class {torch.bincount(predictions[kept], minlength=classes).tolist()}")
    print("true labels per class:", torch.bincount(labels, minlength=classes).tolist())
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    confusion.index_put_((labels, predictions), torch.ones_like(labels), accumulate=True)
    print(f"confusion (rows: true {', '.join(datamodule.classes)}; columns: predicted):\n{confusion}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="lepton train overrides that choose the pair and the teacher")
    main(parser.parse_args().overrides)
