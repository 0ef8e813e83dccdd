"""A fake SLURM on this machine: `sbatch`, `srun`, `sacct` and `scancel`, just what submitit's
SlurmExecutor calls and parses (submitit/slurm/slurm.py).

`install(folder)` writes the four commands into `folder` (put it first on PATH). `sbatch SCRIPT`
reads the script's `#SBATCH` lines, prints "Submitted batch job N" and runs the script in the
background, once per element of a job array (`--array=0-3%2`: at most 2 at once), with the
variables SLURM sets (it refuses `--partition=nope`); `srun` drops its options and starts
`--nodes × --ntasks-per-node` copies of its command with SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID
and SLURM_STEP_ID set; `sacct` reports each job's state; `scancel` marks a job CANCELLED (a `<job>.cancelled` file that
no later state overwrites), then kills its processes. Job states live in `folder/state/`.
Standard library only: the commands run with the test's Python but import nothing of Lepton's.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_STATE", "."))


def install(folder: Path) -> Path:
    """Write sbatch, srun, sacct and scancel into `folder`; returns the folder of job states."""
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / "state"
    state.mkdir(exist_ok=True)
    for command in ("sbatch", "srun", "sacct", "scancel"):
        path = folder / command
        path.write_text(f"#!/bin/sh\nFAKE_SLURM_STATE={shlex.quote(str(state))} "
                        f"exec {shlex.quote(sys.executable)} {shlex.quote(__file__)} {command} \"$@\"\n")
        path.chmod(0o755)
    return state


def kill_all(state: Path) -> None:
    """Kill every job still running (a test's clean-up)."""
    for pid_file in state.glob("*.pid"):
        _kill(int(pid_file.read_text()))


# ---- sbatch ---------------------------------------------------------------------------------------
def sbatch(args: list[str]) -> int:
    script = Path(args[-1])
    options = _options(script)
    if options.get("partition") == "nope":  # as SLURM refuses an unknown partition
        print("sbatch: error: invalid partition specified: nope\n"
              "sbatch: error: Batch job submission failed: Invalid partition name specified", file=sys.stderr)
        return 1
    count, parallelism = 1, 1
    if "array" in options:  # submitit writes 0-(n-1)%p
        span, _, limit = options["array"].partition("%")
        count, parallelism = int(span.split("-")[1]) + 1, int(limit or 1)
    base = _new_job_ids(count + 1)
    names = [f"{base}_{i}" for i in range(count)] if "array" in options else [str(base)]
    for name in names:
        _set_state(name, "PENDING")
    subprocess.Popen([sys.executable, __file__, "_run", str(script), str(base), str(parallelism), *names],
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"Submitted batch job {base}")
    return 0


def _options(script: Path) -> dict[str, str]:
    """The script's `#SBATCH --key=value` lines (values shell-quoted, as submitit writes them)."""
    lines = re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", script.read_text(), re.MULTILINE)
    return {key: shlex.split(value)[0] if value else "" for key, value in lines}


def _new_job_ids(count: int) -> int:
    counter = STATE / "next_id"
    first = int(counter.read_text()) if counter.exists() else 1000 + os.getpid() % 4000
    counter.write_text(str(first + count))
    return first


def _run(args: list[str]) -> None:
    """The background part of sbatch: run the script once per array element, `parallelism` at a time."""
    script, base, parallelism, names = Path(args[0]), int(args[1]), int(args[2]), args[3:]
    options = _options(script)
    running: list[tuple[str, subprocess.Popen]] = []
    for index, name in enumerate(names):
        while len(running) >= parallelism:
            running = _reap(running)
        if not _cancelled(name):
            running.append((name, _start(script, options, base, index, name)))
    while running:
        running = _reap(running)


def _start(script: Path, options: dict, base: int, index: int, name: str) -> subprocess.Popen:
    nodes, per_node = int(options.get("nodes", 1)), int(options.get("ntasks-per-node", 1))
    job_id = str(base + 1 + index) if "_" in name else str(base)
    env = {**os.environ, "SLURM_JOB_ID": job_id, "SLURM_JOBID": job_id, "SLURM_JOB_NAME": options.get("job-name", "sbatch"),
           "SLURM_NNODES": str(nodes), "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NTASKS": str(nodes * per_node),
           "SLURM_NTASKS_PER_NODE": str(per_node), "SLURM_NODELIST": "localhost", "SLURM_JOB_NODELIST": "localhost",
           "SLURM_SUBMIT_DIR": os.getcwd()}
    if "_" in name:
        env.update(SLURM_ARRAY_JOB_ID=str(base), SLURM_ARRAY_TASK_ID=str(index))
    output = Path(_expand(options.get("output", "slurm-%j.out"), env, 0))
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("a") as log:
        process = subprocess.Popen(["bash", str(script)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    if not _cancelled(name):
        _set_state(name, "RUNNING")
    (STATE / f"{name}.pid").write_text(str(process.pid))
    if _cancelled(name):  # scancel came between the start and the pid file: it could not kill it
        _kill(process.pid)
    return process


def _reap(running: list) -> list:
    time.sleep(0.2)
    still = []
    for name, process in running:
        if process.poll() is None:
            still.append((name, process))
        elif not _cancelled(name):  # scancel marks a job before it kills it: a killed job stays CANCELLED
            _set_state(name, "COMPLETED" if process.returncode == 0 else "FAILED")
    return still


def _expand(pattern: str, env: dict, task: int) -> str:
    """SLURM's filename patterns: %A array job, %a array index, %j job id, %t task."""
    for key, value in (("%A", env.get("SLURM_ARRAY_JOB_ID", env["SLURM_JOB_ID"])), ("%a", env.get("SLURM_ARRAY_TASK_ID", "0")),
                       ("%j", env["SLURM_JOB_ID"]), ("%t", str(task))):
        pattern = pattern.replace(key, value)
    return pattern


# ---- srun, sacct, scancel -------------------------------------------------------------------------
def srun(args: list[str]) -> int:
    files, command = {"--output": "%j_%t.out", "--error": None}, list(args)
    while command and command[0].startswith("-"):
        option = command.pop(0)
        if option in files:
            files[option] = command.pop(0)
    per_node, total = int(os.environ["SLURM_NTASKS_PER_NODE"]), int(os.environ["SLURM_NTASKS"])
    tasks = []
    for task in range(total):
        env = {**os.environ, "SLURM_PROCID": str(task), "SLURM_LOCALID": str(task % per_node),
               "SLURM_NODEID": str(task // per_node), "SLURM_STEP_ID": "0", "SLURM_STEPID": "0"}
        stdout = open(_expand(files["--output"], env, task), "a")  # noqa: SIM115 (closed when the task ends)
        stderr = open(_expand(files["--error"], env, task), "a") if files["--error"] else subprocess.STDOUT  # noqa: SIM115
        tasks.append(subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL))
    return max(task.wait() for task in tasks)


def sacct(args: list[str]) -> None:
    wanted = {args[i + 1] for i, arg in enumerate(args) if arg == "-j"}
    print("JobID|State|NodeList")
    for path in sorted(STATE.glob("*.state")):
        if path.stem.split("_")[0] in wanted:
            print(f"{path.stem}|{path.read_text().strip()}|localhost")


def scancel(args: list[str]) -> None:
    for job in (arg for arg in args if not arg.startswith("-")):
        for path in STATE.glob("*.state"):
            if (path.stem == job or path.stem.startswith(f"{job}_")) and _state(path.stem) in ("PENDING", "RUNNING"):
                # Marked first, killed second: the reaper sees the mark once the process has died, and never
                # records the kill as FAILED (it did, when the kill came first).
                (STATE / f"{path.stem}.cancelled").touch()
                _set_state(path.stem, "CANCELLED")
                pid_file = STATE / f"{path.stem}.pid"
                if pid_file.exists():
                    _kill(int(pid_file.read_text()))


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the script, srun, submitit and the training: one session
    except ProcessLookupError:
        pass


def _cancelled(name: str) -> bool:
    return (STATE / f"{name}.cancelled").exists()


def _state(name: str) -> str:
    if _cancelled(name):  # the mark wins over a state file that another process may be rewriting
        return "CANCELLED"
    path = STATE / f"{name}.state"
    return path.read_text().strip() if path.exists() else ""


def _set_state(name: str, state: str) -> None:
    (STATE / f"{name}.state").write_text(state)


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    handlers = {"sbatch": sbatch, "srun": srun, "sacct": sacct, "scancel": scancel, "_run": _run}
    sys.exit(handlers[command](arguments) or 0)
