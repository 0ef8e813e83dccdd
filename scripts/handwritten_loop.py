#!/usr/bin/env python
"""The hand-written PyTorch loop that `bench_overhead.py` compares `lepton train` against.

It trains exactly what Lepton trains for `method=source_only` or `method=dann` on the default
experiment: the same LeNet + bottleneck + head, the same uint8 data held in memory and normalised
per batch, the same batch size, SGD (Nesterov, momentum 0.9, wd 1e-3) and inverse-decay schedule;
no framework, no logging, no evaluation. Prints images/s over the timed steps (both domains'
images count for DANN).

    python scripts/handwritten_loop.py --method dann --steps 300 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from lepton_cli.data.datamodule import to_tensor
from lepton_cli.data.domains import SklearnDigits, SynthDigits
from lepton_cli.losses import DomainAdversarialLoss, DomainDiscriminator, dann_coefficient
from lepton_cli.methods.schedules import inverse_decay
from lepton_cli.models.backbones import SmallCNN
from lepton_cli.models.heads import Classifier


def load(device: torch.device, cache_dir: str | None):
    source = to_tensor(SynthDigits().load("train", ".", cache_dir=cache_dir), 28, 1)
    target = to_tensor(SklearnDigits().load("train", ".", cache_dir=cache_dir), 28, 1)
    return [t.to(device) for t in source], target[0].to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=["source_only", "dann"], default="source_only")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    (source_images, source_labels), target_images = load(device, args.cache_dir)
    model = Classifier(SmallCNN(), num_classes=10).to(device)
    modules = [model]
    if args.method == "dann":
        adversary = DomainAdversarialLoss(DomainDiscriminator(model.features_dim)).to(device)
        modules.append(adversary)
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-3, nesterov=True)
    scheduler = inverse_decay(optimizer)
    total = args.warmup + args.steps
    for step in range(total):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        index = torch.randint(0, len(source_labels), (args.batch_size,), device=device)
        images = (source_images[index].float() / 255 - 0.5) / 0.5
        labels = source_labels[index]
        if args.method == "dann":
            target = target_images[torch.randint(0, len(target_images), (args.batch_size,), device=device)]
            images = torch.cat([images, (target.float() / 255 - 0.5) / 0.5])
        logits, features = model(images)
        loss = F.cross_entropy(logits[: args.batch_size], labels)
        if args.method == "dann":
            adversary.coeff = dann_coefficient(step / total)
            source_features, target_features = features.chunk(2)
            loss = loss + adversary(source_features, target_features)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    images_per_step = args.batch_size * (2 if args.method == "dann" else 1)
    print(json.dumps({"method": args.method, "device": str(device), "steps": args.steps,
                      "images_per_s": round(args.steps * images_per_step / elapsed, 1)}))


if __name__ == "__main__":
    main()
