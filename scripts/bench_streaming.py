#!/usr/bin/env python
"""Lepton's streaming loader (`data.streaming`) against torchvision's `ImageFolder` + `DataLoader`.

Both read the same class-per-folder tree of JPEGs with the same number of workers, the same batch
size and the same work per image (decode to RGB, bilinear resize to `--image-size`, uint8 CHW
tensor), shuffled. Each measurement is a fresh process (so memory is its own), interleaved
Lepton, torchvision, Lepton, torchvision, ... so that a shared machine's load hits both alike. For
each it reports images/s over `--batches` batches after one warm-up batch (worker start-up left
out), the process tree's peak RSS and peak PSS (the main process and its workers, sampled every
50 ms from /proc; PSS counts pages shared by the forked workers once) and CPU seconds. Prints a
Markdown table of the medians.

    python scripts/bench_streaming.py --generate --count 6000          # the image folder, once
    python scripts/bench_streaming.py --repeats 3 --workers 2 --batches 40 --max-memory-gb 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

DEFAULT_DIR = Path("runs/bench_streaming/images")  # generated once with --generate; any folder with --data
CLASSES = 10


def generate(directory: Path, count: int, seed: int = 0) -> None:
    """`count` JPEGs of about 256 px (sizes vary, as photos do) in CLASSES class folders: smooth
    random colour fields with pixel noise, so that they compress and decode like photos, not like
    solid colours."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = directory / f"class_{index % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:06d}.jpg"
        if path.exists():
            continue
        width, height = int(rng.integers(224, 320)), int(rng.integers(224, 320))
        field = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
        noisy = np.asarray(field, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def process_tree(pid: int) -> list[int]:
    """`pid` and its child processes (the DataLoader workers), from /proc."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            pids += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    return pids


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of `pid` and its child processes, from /proc."""
    rss = pss = 0
    for one in process_tree(pid):
        try:
            with open(f"/proc/{one}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:  # a worker that just exited
            continue
    return rss, pss


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live children (the workers are alive: persistent)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in process_tree(pid):
        try:
            with open(f"/proc/{one}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            continue
    return total


def lepton_loader(args):
    from lepton_cli.data.datamodule import DomainAdaptationData
    from lepton_cli.data.domains import ImageFolderDomain

    folder = ImageFolderDomain("bench", path=str(args.data), image_size=args.image_size, cache=False)
    data = DomainAdaptationData(folder, folder, root=str(args.data), image_size=args.image_size, channels=3,
                                batch_size=args.batch_size, steps_per_epoch=args.batches + 1, num_workers=args.workers,
                                streaming="auto", max_memory_gb=args.max_memory_gb, source_val_fraction=0.0,
                                target_val_fraction=0.0)
    data.setup()
    if data.streamed_roles != {"source", "target"}:
        raise SystemExit(f"expected streaming, got in memory: {data.streaming_reason}")
    return data.train_dataloader()["source"], data.streaming_reason


def torchvision_loader(args):
    import torch
    from PIL import Image
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.Resize((args.image_size, args.image_size), Image.Resampling.BILINEAR),
                                    transforms.PILToTensor()])
    dataset = datasets.ImageFolder(str(args.data), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    return loader, "torchvision ImageFolder"


def measure(args) -> dict:
    """One side in this process: images/s over `--batches` batches after one warm-up batch."""
    import torch

    torch.manual_seed(0)
    peak = [0, 0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss, pss = tree_memory(os.getpid())
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    loader, why = (lepton_loader if args.side == "lepton" else torchvision_loader)(args)
    batches = iter(loader)
    first, _ = next(batches)
    assert first.dtype == torch.uint8 and first.shape[1:] == (3, args.image_size, args.image_size)
    cpu_start, start, images = tree_cpu_seconds(os.getpid()), time.perf_counter(), 0
    for _ in range(args.batches):
        batch, _ = next(batches)
        images += len(batch)
    seconds = time.perf_counter() - start
    cpu = tree_cpu_seconds(os.getpid()) - cpu_start
    stop.set()
    sampler.join()
    return {"side": args.side, "images_per_s": images / seconds, "seconds": seconds, "cpu_s": cpu,
            "peak_rss_gb": peak[0] / 1e9, "peak_pss_gb": peak[1] / 1e9, "why": why}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR, help="the image folder (default %(default)s)")
    parser.add_argument("--generate", action="store_true", help="write --count JPEGs into --data first")
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each side, interleaved")
    parser.add_argument("--max-memory-gb", type=float, default=0.5)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--side", choices=("lepton", "torchvision"), help=argparse.SUPPRESS)  # one measurement
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args)))
        return 0
    if args.generate:
        started = time.process_time()
        generate(args.data, args.count)
        print(f"generated {args.count} JPEGs in {args.data} ({time.process_time() - started:.0f} CPU s)", file=sys.stderr)
    rows = []
    for repeat in range(args.repeats):
        for side in ("lepton", "torchvision"):
            command = [sys.executable, __file__, "--side", side, *sys.argv[1:]]
            command = [c for c in command if c != "--generate"]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"repeat {repeat} {side}: {rows[-1]['images_per_s']:.1f} images/s, "
                  f"peak RSS {rows[-1]['peak_rss_gb']:.2f} GB", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    files = sum(1 for _ in args.data.rglob("*.jpg"))
    print(f"Command: `python scripts/bench_streaming.py {' '.join(sys.argv[1:])}`; {date.today()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared, loaded); {files} JPEGs, "
          f"{args.image_size} px, batch {args.batch_size}, {args.workers} workers, {args.batches} timed batches "
          f"after 1 warm-up, median of {args.repeats} interleaved runs each. Lepton: {rows[0]['why']}.\n")
    print("| loader | images/s | CPU s per 1000 images | peak RSS (GB) | peak PSS (GB) | runs (images/s) |")
    print("|---|---|---|---|---|---|")
    medians = {}
    for side in ("lepton", "torchvision"):
        mine = [r for r in rows if r["side"] == side]
        medians[side] = statistics.median(r["images_per_s"] for r in mine)
        cpu = statistics.median(1000 * r["cpu_s"] / (r["images_per_s"] * r["seconds"]) for r in mine)
        print(f"| {'Lepton streaming' if side == 'lepton' else 'torchvision ImageFolder'} | {medians[side]:.1f} | "
              f"{cpu:.1f} | {statistics.median(r['peak_rss_gb'] for r in mine):.2f} | "
              f"{statistics.median(r['peak_pss_gb'] for r in mine):.2f} | "
              f"{', '.join(format(r['images_per_s'], '.0f') for r in mine)} |")
    print(f"\nLepton / torchvision throughput: {medians['lepton'] / medians['torchvision']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
