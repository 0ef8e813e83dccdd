"""What a sweep keeps on disk: one directory per run with its `sweep.json` record, and the sweep's
manifest (`<sweep dir>/sweep.json`). All written atomically through lepton_cli.io.

Resume: a run directory is named `<varying overrides>_<hash>`, the hash being the sha1 of the run's
composed config (interpolations unresolved, `hydra.*` left out), so overrides that spell the same
run differently, or in another order, find the same directory; two jobs of one sweep with the
same hash (`seed=0,0`, two Optuna trials asking the same values) are one run. A run is finished when
its metrics.json holds a finite target accuracy (proof that it was tested), whatever the ranking key:
a run without that key (a typo in --rank, `--rank selection` without validation) is finished, shown
with "–" and ranked last, never rerun. Failed or cut-off runs are moved aside to `<dir>.old-<n>` and
run again, and so is every run with `--force`: old results are never deleted. A run directory that a
live process holds (the training locks it) is never moved: that run is reported as running elsewhere
and left alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from lepton_cli.io import is_locked, write_json_atomically
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.plan import is_seed


@dataclass
class Job:
    """One run: its overrides, the hash that identifies it across invocations, and its directory."""

    overrides: list[str]
    digest: str
    name: str
    run_dir: Path | None = None
    record: dict = field(default_factory=dict)

    @property
    def group(self) -> tuple[str, ...]:
        return tuple(o for o in self.overrides if not is_seed(o.partition("=")[0]))


def job_digest(overrides: list[str]) -> str:
    """sha1 of the run's composed config (interpolations unresolved, `hydra.*` left out): the same
    run whatever the order or spelling of its overrides, `method=source_only` written out or not."""
    from omegaconf import OmegaConf

    from lepton_cli.config import compose_job

    config = OmegaConf.to_container(compose_job(tuple(overrides)), resolve=False)
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_name(overrides: list[str], keys: list[str], digest: str) -> str:
    settings = dict(o.partition("=")[::2] for o in overrides)
    label = "_".join(f"{k.split('.')[-1].split('@')[-1]}-{settings[k]}" for k in keys if k in settings)
    label = re.sub(r"[^A-Za-z0-9.-]+", "-", label)[:80].strip("-")
    return f"{label}_{digest}" if label else digest


def is_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_result(run_dir: Path) -> dict | None:
    """metrics.json if the run finished (a readable mapping with a finite target/acc), else None.
    The ranking key plays no part: a run that lacks it is finished all the same."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or not is_finite(metrics.get("target/acc")):
        return None
    return metrics


def save_record(job: Job, returncode: int | None, wall: float | None, metrics: dict | None, error: str) -> dict:
    """The record of a run that ended, written to its sweep.json; returned with its metrics."""
    assert job.run_dir is not None
    record = {"overrides": job.overrides, "digest": job.digest, "returncode": returncode, "wall_time_s": wall,
              "status": "ok" if metrics is not None else "failed", "error": error}
    write_json_atomically(job.run_dir / "sweep.json", record)  # makes the directory: a SLURM job may end before it starts
    return {**record, "metrics": metrics}


def saved_record(run_dir: Path) -> dict:
    try:
        record = json.loads((run_dir / "sweep.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def find_run_dir(sweep_dir: Path, digest: str) -> Path | None:
    matches = [p for p in sweep_dir.glob(f"*{digest}") if p.is_dir() and (p.name == digest or p.name.endswith(f"_{digest}"))]
    return matches[0] if matches else None


def move_aside(run_dir: Path) -> Path:
    """Rename a stale run directory to `<dir>.old-<n>`. Refuses one that a live process holds."""
    if is_locked(run_dir):
        raise RuntimeError(f"{run_dir} is held by a live process; it must not be moved")  # plan_runs checks first
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.old-{n}")).exists():
        n += 1
    run_dir.rename(aside)
    return aside


def plan_runs(jobs_overrides: list[list[str]], keys: list[str], sweep_dir: Path, options: Options,
              move: bool = True, planned: dict[tuple[str, ...], Job] | None = None) -> tuple[list[Job], list[Job]]:
    """Split the jobs into those to run and those not to run now: finished, or running in another
    process (status "busy"). Stale run directories are moved aside (`move=False`: only looked at);
    busy ones are never touched. A job with the digest of one already planned (in this call, or in
    `planned`: overrides → job, shared between calls and filled here) is left out with a note;
    `planned` maps its overrides to the first job."""
    planned = {} if planned is None else planned
    by_digest = {job.digest: job for job in planned.values()}
    to_run, kept = [], []
    for overrides in jobs_overrides:
        first = planned.get(tuple(overrides))  # the very same overrides: no need to compose them again
        digest = first.digest if first else job_digest(overrides)
        if first or digest in by_digest:
            planned[tuple(overrides)] = first = first or by_digest[digest]
            same = "" if first.overrides == overrides else f" (the same config as {' '.join(first.overrides)})"
            print(f"lepton sweep: note: {' '.join(overrides) or 'the run without overrides'} is planned already{same}; "
                  "it runs once", flush=True)
            continue
        job = Job(overrides, digest, run_name(overrides, keys, digest))
        planned[tuple(overrides)] = by_digest[digest] = job
        existing = find_run_dir(sweep_dir, digest)
        if existing and is_locked(existing):
            job.run_dir = existing
            job.record = {"overrides": overrides, "status": "busy", "metrics": None, "run_dir": str(existing),
                          "error": f"still running in another process (it holds {existing}/.lepton.lock); "
                                   "rerun the sweep when it has finished"}
            kept.append(job)
            continue
        metrics = read_result(existing) if existing else None
        if existing and metrics is not None and not options.force:
            job.run_dir = existing
            # null in sweep.json when SLURM killed the job after its metrics.json was written
            wall = saved_record(existing).get("wall_time_s") or metrics.get("wall_time_s")
            job.record = {"overrides": overrides, "status": "ok", "metrics": metrics, "error": "",
                          "wall_time_s": wall if is_finite(wall) else None, "run_dir": str(existing)}
            kept.append(job)
            continue
        if existing and move:
            move_aside(existing)  # failed, cut off, or --force: keep the old results beside the new run
        job.run_dir = sweep_dir / job.name
        job.record = {"overrides": overrides, "status": "pending", "metrics": None, "run_dir": str(job.run_dir)}
        to_run.append(job)
    return to_run, kept


def write_manifest(sweep_dir: Path, options: Options, jobs: list[Job], ranked_by: str) -> None:
    """`<sweep dir>/sweep.json`: the grid, how it is ranked, and each run's directory."""
    manifest = {"grid": options.grid, "rank_by": options.rank_by, "ranked_by": ranked_by,
                "runs": [{"overrides": job.overrides, "digest": job.digest, "run_dir": job.run_dir.name} for job in jobs]}
    write_json_atomically(sweep_dir / "sweep.json", manifest)
