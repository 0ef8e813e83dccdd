#!/usr/bin/env python
"""The hand-written PyTorch loops that `bench_overhead.py` compares `lepton train` against.

One plain loop per method, doing the work Lepton does for that method on the default experiment:
the same LeNet + bottleneck (256) + head, the same uint8 data held on the device and gathered by
random indices, the same augmentation (`conf/augment/digits.yaml`'s weak and strong views, through
the same batched `BatchAugment`), the same batch per domain, the same losses (`lepton_cli.losses`),
SGD (Nesterov, momentum 0.9, wd 1e-3) and inverse-decay schedule; no Trainer, no logging, no
evaluation. The frozen teacher of distill is a randomly initialised LeNet (its cost is what
matters here, not its accuracy), and finetune reads labelled target images. Prints images/s over
the timed steps; images counted are those read per step (one domain for source_only and finetune,
both for the others).

    python scripts/handwritten_loop.py --method dann --steps 300 --batch-size 64
    python scripts/handwritten_loop.py --method mcc --device cuda --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

METHODS = ("source_only", "finetune", "distill", "pseudo_label", "dann", "cdan", "mcc", "vada")
ONE_DOMAIN = ("source_only", "finetune")  # the methods that read one domain's images per step
CONF = Path(__file__).resolve().parents[1] / "conf"


def images_per_step(method: str, batch_size: int) -> int:
    return batch_size * (1 if method in ONE_DOMAIN else 2)


def load_domain(name: str, data_root: str | None, cache_dir: str | None, image_size: int, channels: int):
    """uint8 (N, C, size, size) train images and labels of one of the digit data sets."""
    from lepton_cli.data.datamodule import to_tensor
    from lepton_cli.data.domains import FileDomain, SklearnDigits, SynthDigits

    domains = {"synth_digits": SynthDigits, "digits": SklearnDigits}
    domain = domains[name]() if name in domains else FileDomain(name, reader=name)
    return to_tensor(domain.load("train", data_root or ".", cache_dir=cache_dir), image_size, channels)


def augmentations(device: torch.device):
    """The weak and strong views of `conf/augment/digits.yaml` (its numbers read as data), normalised
    with small_cnn's 0.5 / 0.5 as Lepton's `mean: auto` gives."""
    from omegaconf import OmegaConf

    from lepton_cli.data.augment import BatchAugment

    views = OmegaConf.to_container(OmegaConf.load(CONF / "augment" / "digits.yaml"))
    make = {kind: BatchAugment(**{**{k: v for k, v in view.items() if k != "_target_"}, "mean": 0.5, "std": 0.5})
            for kind, view in views.items()}
    return make["weak"].to(device).train(), make["strong"].to(device).train()


def make_step(method: str, model, num_classes: int, weak, strong, device: torch.device, total_steps: int):
    """(extra trainable modules, step(step, source_images, source_labels, target_images, target_labels) → loss)."""
    from lepton_cli.losses import (
        ConditionalDomainAdversarialLoss,
        DomainAdversarialLoss,
        DomainDiscriminator,
        conditional_input_dim,
        dann_coefficient,
        entropy,
        kd_loss,
        mcc_loss,
        vat_loss,
    )
    from lepton_cli.methods.vada import batch_norm_stats_frozen
    from lepton_cli.models.backbones import SmallCNN
    from lepton_cli.models.heads import Classifier

    features_dim = model.features_dim

    if method == "source_only":
        def step(i, xs, ys, xt, yt):
            return F.cross_entropy(model(weak(xs))[0], ys)
        return [], step
    if method == "finetune":
        def step(i, xs, ys, xt, yt):
            return F.cross_entropy(model(weak(xt))[0], yt)
        return [], step
    if method == "distill":
        backbone = SmallCNN(in_chans=model.backbone.features[0].in_channels)
        teacher = Classifier(backbone, num_classes).to(device).requires_grad_(False).eval()

        def step(i, xs, ys, xt, yt):
            target_view = weak(xt)
            logits, _ = model(torch.cat([weak(xs), strong(xt)]))
            with torch.no_grad():
                teacher_logits = teacher(target_view)[0]
            return F.cross_entropy(logits[: len(xs)], ys) + 0.9 * kd_loss(logits[len(xs):], teacher_logits, 4.0)
        return [], step
    if method == "pseudo_label":
        marginals = torch.full((2, num_classes), 1.0 / num_classes, device=device)  # source, target

        def step(i, xs, ys, xt, yt):
            logits, _ = model(torch.cat([weak(xs), weak(xt), strong(xt)]))
            source_logits, weak_logits, strong_logits = logits.split([len(xs), len(xt), len(xt)])
            with torch.no_grad():
                probabilities = F.softmax(weak_logits.float(), dim=1)
                batch = torch.stack([F.one_hot(ys, num_classes).float().mean(0), probabilities.mean(0)])
                marginals.mul_(0.99).add_(batch, alpha=0.01)
                aligned = probabilities * marginals[0] / marginals[1].clamp_min(1e-6)
                confidence, pseudo_labels = (aligned / aligned.sum(1, keepdim=True)).max(1)
                mask = (confidence >= 0.8).float()
            unsupervised = (F.cross_entropy(strong_logits, pseudo_labels, reduction="none") * mask).mean()
            return F.cross_entropy(source_logits, ys) + min(1.0, i / total_steps / 0.1) * unsupervised
        return [], step
    if method == "mcc":
        def step(i, xs, ys, xt, yt):
            logits, _ = model(torch.cat([weak(xs), weak(xt)]))
            return F.cross_entropy(logits[: len(xs)], ys) + mcc_loss(logits[len(xs):], 2.5)
        return [], step
    if method in ("dann", "cdan"):
        if method == "dann":
            adversary = DomainAdversarialLoss(DomainDiscriminator(features_dim, 1024)).to(device)
        else:
            discriminator = DomainDiscriminator(conditional_input_dim(features_dim, num_classes, None, 1024), 1024)
            adversary = ConditionalDomainAdversarialLoss(discriminator, features_dim, num_classes, True, None, 1024).to(device)

        def step(i, xs, ys, xt, yt):
            logits, features = model(torch.cat([weak(xs), weak(xt)]))
            adversary.coeff = dann_coefficient(i / total_steps)
            (source_logits, target_logits), (source_features, target_features) = logits.chunk(2), features.chunk(2)
            if method == "dann":
                transfer = adversary(source_features, target_features)
            else:
                transfer = adversary(source_features, source_logits, target_features, target_logits)
            return F.cross_entropy(source_logits, ys) + transfer
        return [adversary], step
    if method == "vada":
        adversary = DomainAdversarialLoss(DomainDiscriminator(features_dim, 1024), coeff=0.01).to(device)

        def logits_frozen_bn(images):
            with batch_norm_stats_frozen(model):
                return model(images)[0]

        def vat(images):
            with torch.autocast(device_type=device.type, enabled=False):
                images = images.float()
                with torch.no_grad():
                    reference = logits_frozen_bn(images)
                return vat_loss(logits_frozen_bn, images, reference, eps=3.5, xi=1e-3)

        def step(i, xs, ys, xt, yt):
            source_view, target_view = weak(xs), weak(xt)
            logits, features = model(torch.cat([source_view, target_view]))
            (source_logits, target_logits), (source_features, target_features) = logits.chunk(2), features.chunk(2)
            return (F.cross_entropy(source_logits, ys) + adversary(source_features, target_features) + vat(source_view)
                    + 0.01 * (entropy(target_logits) + vat(target_view)))
        return [adversary], step
    raise SystemExit(f"unknown method {method!r}; one of {', '.join(METHODS)}")


def run_loop(method: str, steps: int = 300, warmup: int = 20, batch_size: int = 64, device: str = "cpu",
             precision: str = "32-true", source: str = "synth_digits", target: str = "digits",
             data_root: str | None = None, cache_dir: str | None = None, channels: int = 1, seed: int = 0,
             clock: Callable[[], float] = time.perf_counter) -> float:
    """Train `warmup + steps` steps of `method` in a plain loop; images/s over the last `steps`, in
    seconds of `clock` (wall time, or `time.process_time`: this process's CPU time)."""
    from lepton_cli.methods.schedules import inverse_decay
    from lepton_cli.models.backbones import SmallCNN
    from lepton_cli.models.heads import Classifier

    torch.manual_seed(seed)
    device = torch.device(device)
    source_images, source_labels = (t.to(device) for t in load_domain(source, data_root, cache_dir, 28, channels))
    target_images, target_labels = (t.to(device) for t in load_domain(target, data_root, cache_dir, 28, channels))
    num_classes = 10
    model = Classifier(SmallCNN(in_chans=channels), num_classes, bottleneck_dim=256).to(device)
    weak, strong = augmentations(device)
    extra, step_loss = make_step(method, model, num_classes, weak, strong, device, warmup + steps)
    params = [p for m in (model, *extra) for p in m.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-3, nesterov=True)
    scheduler = inverse_decay(optimizer)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    if precision.startswith("bf16"):
        def autocast():
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(device)
            started = clock()
        source_index = torch.randint(0, len(source_labels), (batch_size,), device=device)
        target_index = torch.randint(0, len(target_labels), (batch_size,), device=device)
        with autocast():
            loss = step_loss(i, source_images[source_index], source_labels[source_index],
                             target_images[target_index], target_labels[target_index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    synchronize(device)
    return steps * images_per_step(method, batch_size) / (clock() - started)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=METHODS, default="source_only")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--source", default="synth_digits")
    parser.add_argument("--target", default="digits")
    parser.add_argument("--data-root", default=None, help="data.root for file data sets (mnist, usps)")
    parser.add_argument("--cache-dir", default=os.environ.get("LEPTON_CACHE", str(Path("~/.cache/lepton/cache").expanduser())))
    args = parser.parse_args()
    rate = run_loop(args.method, args.steps, args.warmup, args.batch_size, args.device, args.precision,
                    args.source, args.target, args.data_root, args.cache_dir)
    print(json.dumps({"method": args.method, "device": args.device, "precision": args.precision, "steps": args.steps,
                      "images_per_s": round(rate, 1)}))


if __name__ == "__main__":
    main()
