"""Wall time of one training step of mldg (second and first order) against erm, on the digit CNN.

Each method's own `training_step` on a random uint8 batch of `--batch` 28 px images from 3 source
domains (equal shares, as the balanced sampler gives), then backward and an SGD step; the median
over `--steps` steps after `--warmup`. No data loading, no Lightning loop: the cost of the step alone.

    python scripts/bench_mldg_step.py [--batch 64] [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from lepton_cli.methods import ERM, MLDG
    from lepton_cli.models.backbones import SmallCNN

    warnings.filterwarnings("ignore", message=".*self.log.*")  # the step logs; no Trainer here
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.batch,))
    batch = {"source": (images, labels), "source_domain": torch.arange(args.batch) % 3}
    variants = {"erm": lambda: ERM(SmallCNN(), 10), "mldg (first order)": lambda: MLDG(SmallCNN(), 10, first_order=True),
                "mldg (second order)": lambda: MLDG(SmallCNN(), 10, first_order=False)}
    results = {}
    for name, make in variants.items():
        method = make()
        optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
        times = []
        for step in range(args.warmup + args.steps):
            started = time.perf_counter()
            optimizer.zero_grad()
            method.training_step(batch, step).backward()
            optimizer.step()
            if step >= args.warmup:
                times.append(time.perf_counter() - started)
        results[name] = statistics.median(times)
    base = results["erm"]
    print(f"batch {args.batch}, {args.threads} thread(s), median of {args.steps} steps")
    for name, seconds in results.items():
        print(f"{name:<22} {1000 * seconds:8.1f} ms/step   {seconds / base:4.2f}x erm")


if __name__ == "__main__":
    main()
