"""SLURM jobs for `lepton sweep`, through submitit (`pip install lepton-transfer[cluster]`): `SlurmLauncher`.

`--launcher slurm` submits every run as a SLURM job, in job arrays, from a login node, and waits for
them, updating the leaderboard as each ends. Each job runs the same training subprocess as a local
run (so resume, failed runs and the leaderboard work alike) and can be a DDP job: its `--nodes`,
`--ntasks-per-node` and `--gpus-per-node` come from the run's `trainer.num_nodes` and
`trainer.devices` (GPUs unless `trainer.accelerator=cpu`), since SLURM starts one task per device and
Lightning refuses to start when they differ. Every task runs the training subprocess with SLURM's
variables, from which Lightning and lepton_cli/distributed.py take the rank; task 0 reports.
Executor settings are spelled as for hydra-submitit-launcher:

    lepton sweep --launcher slurm hydra.launcher.partition=gpu hydra.launcher.timeout_min=120 \\
        trainer=ddp trainer.devices=4 method=dann,cdan seed=0,1,2

`hydra/launcher=submitit_slurm` means `--launcher slurm`; `hydra/launcher=joblib` with
`hydra.launcher.n_jobs=N` means `--jobs N` (the local launcher plays joblib's role, with
subprocesses so that DDP runs work); `hydra/launcher=basic` means one local job at a time.
Ctrl-C (or SIGTERM) cancels the submitted jobs (scancel), so that rerunning with `--dir` does not
start a second copy of a run that is still going. SLURM jobs outlive a sweep killed by SIGKILL;
a rerun then leaves their run directories alone while they run (the training locks them).
`--launcher submitit_local` runs the jobs through submitit on this machine, one task each (for
tests and single machines).

Nothing is unpickled on the login node: a submitted task returns None, and once submitit says a job
is done the sweep reads the run's record from the run directory's JSON files (sweep.json, written
by rank 0, and metrics.json), using the job's state only to say why a job that left no record
failed. submitit's `*_result.pkl` files are never read (whoever can write to the sweep directory
could put code in them); its folder, `<sweep dir>/.submitit`, is made private (mode 0o700). The
compute node still unpickles the job's `*_submitted.pkl` (the task and its job): that is how
submitit starts a job.

Alternatively, hydra-submitit-launcher runs `lepton train -m` on SLURM (`lepton sweep --dir` does
not see those runs):

    lepton train -m hydra/launcher=submitit_slurm hydra.launcher.nodes=1 \\
        hydra.launcher.tasks_per_node=4 hydra.launcher.gpus_per_node=4 \\
        trainer=ddp trainer.devices=4 method=dann,cdan seed=0,1,2
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lepton_cli.errors import LeptonError
from lepton_cli.sweep.launchers import Launcher, launch
from lepton_cli.sweep.options import Options
from lepton_cli.sweep.plan import in_job
from lepton_cli.sweep.records import Job, read_result, save_record, saved_record

# hydra-submitit-launcher's setting names: those submitit's AutoExecutor shares between clusters keep their
# name, the SLURM-only ones take the slurm_ prefix (partition → slurm_partition).
SHARED_SETTINGS = ("timeout_min", "mem_gb", "cpus_per_task", "gpus_per_node", "tasks_per_node", "nodes", "name",
                   "stderr_to_stdout")
SLURM_SETTINGS = ("partition", "qos", "account", "constraint", "exclude", "comment", "gres", "cpus_per_gpu",
                  "gpus_per_task", "mem_per_gpu", "mem_per_cpu", "signal_delay_s", "array_parallelism",
                  "additional_parameters", "setup", "srun_args")
# hydra-submitit-launcher's defaults (submitit's own timeout is 5 minutes).
DEFAULT_SETTINGS = {"timeout_min": 60, "name": "lepton-sweep"}
POLL_SECONDS = 2.0  # how often the sweep looks for finished jobs (a file check; submitit paces sacct itself)


def launcher_settings(launcher: str, preset: dict, line: dict[str, str]) -> dict:
    """The submitit executor's settings: a preset's `launcher:` mapping, then `hydra.launcher.KEY=VALUE`
    from the command line (values typed as Hydra types them: 120, gpu, [a,b], {mail-type:END})."""
    for key in line:
        check_launcher_key(key, "hydra.launcher.")
    if launcher == "local":
        if line:
            raise LeptonError(f"hydra.launcher.{next(iter(line))} is a setting of SLURM jobs: add --launcher slurm "
                              "(or hydra/launcher=submitit_slurm)")
        return {}  # a preset's SLURM settings apply when the sweep runs with --launcher slurm
    return {**preset, **{key: _hydra_value(key, value) for key, value in line.items()}}


def check_launcher_key(key: str, where: str) -> None:
    if key not in (*SHARED_SETTINGS, *SLURM_SETTINGS):
        raise LeptonError(f"unknown launcher setting {where}{key}; known: {', '.join((*SHARED_SETTINGS, *SLURM_SETTINGS))}"
                          + (", n_jobs" if where.startswith("hydra.") else ""))


def _hydra_value(key: str, text: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(f"{key}={text}").value()
    except HydraException as error:
        raise LeptonError(f"could not read hydra.launcher.{key}={text}: {str(error).splitlines()[0]}") from None


def require_submitit(launcher: str) -> None:
    """Fail in one line, before anything is created or submitted, when submitit or SLURM is missing."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise LeptonError(f"--launcher {launcher} needs submitit, an optional extra: pip install lepton-transfer[cluster]") from None
    if launcher == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise LeptonError("SLURM's sbatch was not found on PATH: are you on a login node of the cluster? "
                          "(--launcher local runs the sweep here)")


def job_resources(overrides: tuple[str, ...]) -> dict:
    """What a run needs from SLURM, read from its composed trainer config: nodes = trainer.num_nodes,
    one task per device (trainer.devices), and as many GPUs unless trainer.accelerator=cpu."""
    from lepton_cli.config import compose_job

    trainer = compose_job(overrides).trainer
    devices, accelerator = _device_count(trainer.get("devices")), str(trainer.get("accelerator", "cpu")).lower()
    if devices is None:
        raise LeptonError(f"SLURM jobs start one task per device: set trainer.devices to a number, not "
                          f"{trainer.get('devices')!r} {in_job(overrides)}")
    return {"nodes": int(trainer.get("num_nodes") or 1), "tasks_per_node": devices, "accelerator": accelerator,
            "gpus_per_node": devices if accelerator in ("gpu", "cuda", "auto") else 0}


def _device_count(devices) -> int | None:
    """trainer.devices as a number of devices: 4, "4", [0, 1] or "0,1"; None for auto and -1."""
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        return devices if devices > 0 else None
    return len(devices) if devices is not None and not isinstance(devices, str) else None


def executor_parameters(overrides: list[str], options: Options) -> dict:
    """submitit's `update_parameters` for one run: the user's settings, with nodes, tasks and GPUs
    derived from the run's config (a setting that disagrees with the config is a mistake)."""
    resources = job_resources(tuple(overrides))
    sources = {"nodes": f"trainer.num_nodes={resources['nodes']}",
               "tasks_per_node": f"trainer.devices={resources['tasks_per_node']}",
               "gpus_per_node": f"trainer.devices={resources['tasks_per_node']} with trainer.accelerator={resources['accelerator']}"}
    for key, source in sources.items():
        given = options.launcher_settings.get(key)
        if given is not None and given != resources[key]:
            raise LeptonError(f"hydra.launcher.{key}={given} disagrees with {source} {in_job(overrides)}; "
                              f"leave it out: lepton sweep derives it from the config")
    derived = {key: resources[key] or None for key in sources}  # no --gpus-per-node line for CPU jobs
    if options.launcher == "submitit_local":
        if resources["nodes"] > 1:
            raise LeptonError(f"--launcher submitit_local runs on this machine: trainer.num_nodes must be 1 "
                              f"{in_job(overrides)}")
        derived.update(nodes=1, tasks_per_node=1)  # one process; Lightning starts the other ranks itself
    settings = {**DEFAULT_SETTINGS, **options.launcher_settings, **derived}
    return {(k if k in SHARED_SETTINGS else f"slurm_{k}"): v for k, v in settings.items() if v is not None}


def private_folder(sweep_dir: Path) -> Path:
    """`<sweep dir>/.submitit`, made (or kept) mode 0o700: submitit's pickles and scripts are nobody else's."""
    folder = sweep_dir / ".submitit"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # a folder, not a data file: lepton_cli.io has no say
    status = os.lstat(folder)
    if not folder.is_dir() or folder.is_symlink() or status.st_uid != os.getuid():
        raise LeptonError(f"{folder} is not a folder of yours (a link, or another user's); move it away and rerun")
    if status.st_mode & 0o777 != 0o700:
        folder.chmod(0o700)
    return folder


def make_executor(sweep_dir: Path, launcher: str, parameters: dict):
    import submitit

    # %j: one folder of submitit files (pickles, sbatch script, logs) per SLURM job
    executor = submitit.AutoExecutor(folder=sweep_dir / ".submitit" / "%j", cluster="slurm" if launcher == "slurm" else "local")
    try:
        executor.update_parameters(**parameters)
    except (AssertionError, ValueError, TypeError, NameError) as error:
        raise LeptonError(f"bad launcher setting: {str(error).splitlines()[0]}") from None
    return executor


def launch_task(job: Job) -> None:
    """What each task of a submitit job runs: `launch`, as the task's rank. A SLURM task keeps SLURM's
    variables, from which Lightning and lepton_cli.distributed take the rank and world size. Returns
    None: rank 0 writes the record to the run's sweep.json, and the login node unpickles nothing."""
    import submitit

    environment = submitit.JobEnvironment()
    launch(job, rank=environment.global_rank, keep_slurm=environment.cluster == "slurm")


def cancel(submitted: list[tuple]) -> None:
    for handle, _ in submitted:
        handle.cancel(check=False)
    if submitted:
        print(f"\nlepton sweep: cancelled {len(submitted)} unfinished job(s): "
              f"{' '.join(handle.job_id for handle, _ in submitted)}", file=sys.stderr)


def task_record(handle, job: Job) -> dict:
    """The record of a done submitit job, read from its run directory's JSON files, never from
    submitit's result pickle: the sweep.json that rank 0 wrote, with the run's metrics.json. A job
    that left none (killed by SLURM: time limit, memory, node failure) gets a failed record naming
    its state."""
    assert job.run_dir is not None
    saved, metrics = saved_record(job.run_dir), read_result(job.run_dir)
    if saved.get("digest") == job.digest and saved.get("status") == "ok" and metrics is not None:
        return {**saved, "metrics": metrics}
    if saved.get("digest") == job.digest and saved.get("status") == "failed" and saved.get("error"):
        return {**saved, "metrics": None}  # the training failed; rank 0 said why
    error = f"job {handle.job_id} ended without a result ({handle.state}); its log: {handle.paths.stderr}"
    return save_record(job, None, None, None, error)


class SlurmLauncher(Launcher):
    """One SLURM job per run (or one submitit local job, `--launcher submitit_local`)."""

    def check(self, jobs_overrides: list[list[str]]) -> None:
        """Every run's executor settings checked before the sweep directory is made or anything submitted."""
        for parameters in {json.dumps(executor_parameters(job, self.options), sort_keys=True) for job in jobs_overrides}:
            if self.options.launcher == "slurm":  # a SLURM executor writes nothing until it submits
                make_executor(self.sweep_dir, self.options.launcher, json.loads(parameters))

    def submit(self, jobs: list[Job]) -> list[tuple]:
        """Submit the jobs, those with the same settings together as one job array; (submitit job, job) pairs."""
        from submitit.core.utils import FailedJobError

        groups: dict[str, list[Job]] = {}
        for job in jobs:
            groups.setdefault(json.dumps(executor_parameters(job.overrides, self.options), sort_keys=True), []).append(job)
        submitted: list[tuple] = []
        private_folder(self.sweep_dir)
        try:
            for parameters, group in groups.items():
                executor = make_executor(self.sweep_dir, self.options.launcher, json.loads(parameters))
                # submitit echoes a refusing sbatch's stderr; the error line below says it once
                with contextlib.redirect_stderr(io.StringIO()), executor.batch():
                    handles = [executor.submit(launch_task, replace(job, run_dir=job.run_dir.resolve())) for job in group]
                submitted += zip(handles, group)
        except FailedJobError as error:  # sbatch refused them: an unknown partition or account, too long a time...
            cancel(submitted)
            reason = next((line for line in str(error).splitlines() if line.strip()), "no reason given")
            raise LeptonError(f"sbatch refused the jobs: {reason}") from None
        return submitted

    def run(self, jobs: list[Job], on_done: Callable[[Job], None]) -> None:
        """Submit the jobs and wait for them; SLURM gets them all at once (its job arrays pace them), the
        local submitit executor `options.jobs` at a time. Ctrl-C cancels the jobs that have not ended."""
        window = len(jobs) if self.options.launcher == "slurm" else self.options.jobs
        waiting, running = list(jobs), []
        try:
            while waiting or running:
                if waiting and len(running) < window:
                    free = window - len(running)
                    submitted, waiting = self.submit(waiting[:free]), waiting[free:]
                    running += submitted
                    if self.options.launcher == "slurm":
                        arrays = sorted({handle.job_id.split("_")[0] for handle, _ in submitted})
                        print(f"lepton sweep: submitted {len(submitted)} jobs to SLURM (job {', '.join(arrays)}); waiting "
                              f"for them, Ctrl-C cancels them. submitit's files: {self.sweep_dir}/.submitit", flush=True)
                for handle, job in [pair for pair in running if pair[0].done()]:
                    running.remove((handle, job))
                    job.record = {**task_record(handle, job), "run_dir": str(job.run_dir)}
                    on_done(job)
                if running:
                    time.sleep(POLL_SECONDS)
        except (KeyboardInterrupt, LeptonError):
            cancel(running)
            raise
