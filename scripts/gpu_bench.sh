#!/usr/bin/env bash
# Every GPU measurement of issue 20 in one call; results as Markdown and JSON in --out DIR.
#
#   scripts/gpu_bench.sh --out DIR [--cpu] [--data ROOT] [--budget SECONDS]
#   scripts/gpu_bench.sh --prepare        # on the development machine, before a GPU session
#
# Parts, each under its own timeout and all under one deadline (--budget, default 510 s: the whole
# script fits in 9 minutes); a part that fails or times out is recorded as such and the next runs:
#   overhead_fp32, overhead_bf16  source_only and dann, `lepton train` against the eager hand-written
#                                 loop (scripts/bench_overhead.py), MNIST → USPS, 128 + 128 per step
#   compile, reduce_overhead      dann with trainer.compile=true / =reduce-overhead (CUDA graphs), bf16
#   channels_last                 dann on 3-channel input, trainer.channels_last=true against false
#   tta_dann, tta_<best>          time to accuracy, MNIST → USPS, seed 0: from the command to metrics.json,
#                                 start-up and decoding the data included (empty data cache)
# Targets: ratio ≥ 0.9 against the eager loop; ≥ 150,000 images/s with CUDA graphs; ≥ 95% in < 60 s.
#
# --cpu: a dry run on the CPU with tiny steps that takes every code path (compile parts run with
# TORCH_COMPILE_DISABLE=1: the plumbing, not the compiler; timeouts 30 times longer). --data ROOT:
# a Lepton data root holding MNIST/raw/*-ubyte[.gz] and usps.bz2/usps.t.bz2; default: built from shared/data/{mnist,usps} in the
# repository (what travels to the GPU machine) or ../shared/data. --prepare copies those files and
# the pure-Python packages the GPU image lacks (hydra-core, omegaconf, antlr4) into shared/.
# Output: DIR/results.md, DIR/results.json, DIR/log.txt (three files: the device tool returns at most 8).
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARGS="$*" OUT="" CPU=0 DATA="" BUDGET="" PREPARE=0 BEST=${GPU_BENCH_BEST:-mcc}
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --cpu) CPU=1; shift ;;
    --data) DATA=${2:?--data needs a folder}; shift 2 ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift 2 ;;
    --best) BEST=${2:?--best needs a method}; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${PYTHON:-}" ]; then :
elif "$REPO/.venv/bin/python" -c "" 2>/dev/null; then PYTHON=$REPO/.venv/bin/python  # here; the GPU image has none
else PYTHON=python3; fi
SHARED=${GPU_BENCH_SHARED:-$REPO/shared}

if [ "$PREPARE" = 1 ]; then
  source_data=$REPO/../shared/data
  [ -d "$source_data/mnist" ] && [ -d "$source_data/usps" ] || { echo "gpu_bench.sh: no $source_data/{mnist,usps} to copy" >&2; exit 2; }
  mkdir -p "$SHARED/data" "$SHARED/site" || exit 2
  cp -r "$source_data/mnist" "$source_data/usps" "$SHARED/data/" && chmod -R u+w "$SHARED/data" || exit 2
  "$PYTHON" - "$SHARED/site" <<'EOF' || exit 2
import importlib, shutil, sys
from pathlib import Path
for name in ("hydra", "omegaconf", "antlr4"):  # pure Python, not in the GPU image
    package = Path(importlib.import_module(name).__file__).parent
    shutil.copytree(package, Path(sys.argv[1]) / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
EOF
  echo "prepared $SHARED (data and site packages; $(du -sh "$SHARED" | cut -f1)): it travels with the working tree"
  exit 0
fi
[ -n "$OUT" ] || { echo "gpu_bench.sh: --out DIR is required (see --help)" >&2; exit 2; }
# Earlier results are the user's: never overwrite them.
if [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "gpu_bench.sh: --out $OUT already holds files (earlier results?); give a new or empty folder" >&2; exit 2
fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d) || exit 2
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/parts"
export PYTHONPATH="$REPO${SHARED:+:$SHARED/site}${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export LEPTON_CACHE="$WORK/cache"   # empty: time to accuracy includes decoding the data
LOG=$OUT/log.txt
: > "$LOG"
cd "$REPO" || exit 2

if [ -z "$DATA" ]; then   # a data root in Lepton's layout, linked to the shared files
  for candidate in "$SHARED/data" "$REPO/../shared/data"; do
    if [ -d "$candidate/mnist" ] && [ -d "$candidate/usps" ]; then
      DATA=$WORK/data
      mkdir -p "$DATA/MNIST/raw"
      ln -s "$(cd "$candidate/mnist" && pwd)"/* "$DATA/MNIST/raw/" && ln -s "$(cd "$candidate/usps" && pwd)"/* "$DATA/"
      break
    fi
  done
  [ -n "$DATA" ] || { echo "gpu_bench.sh: no MNIST/USPS files: give --data ROOT or run --prepare first" >&2; exit 2; }
fi

# --cpu: the same parts with every timeout SCALE times longer: on a shared 2-core machine one part
# took 4-6 minutes at a load of 19 (importing torch and Lightning alone took 90 s); what matters
# there is that each part runs, not how fast.
SCALE=1
if [ "$CPU" = 1 ]; then
  SCALE=${GPU_BENCH_CPU_SCALE:-30}
  TRAINER=cpu BATCH=8 STEPS=3 WARMUP=1 REPEATS=1 TTA=(trainer.max_epochs=1 data.steps_per_epoch=2 data.batch_size=2)
  export TORCH_COMPILE_DISABLE=1
else
  TRAINER=gpu BATCH=128 STEPS=${GPU_BENCH_STEPS:-300} WARMUP=${GPU_BENCH_WARMUP:-30} REPEATS=${GPU_BENCH_REPEATS:-2}
  TTA=(trainer.max_epochs="${TTA_EPOCHS:-10}" data.steps_per_epoch="${TTA_STEPS:-250}" data.batch_size="${TTA_BATCH:-128}")
fi
BUDGET=${BUDGET:-$(( 510 * SCALE ))}
DEADLINE=$(( $(date +%s) + BUDGET ))

# part NAME TIMEOUT COMMAND...: run it under min(TIMEOUT, time left); record a failure as the part's JSON
part() {
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  local left=$(( DEADLINE - $(date +%s) ))
  [ "$limit" -lt "$left" ] || limit=$left
  echo "=== $name (timeout ${limit} s): $*" >> "$LOG"
  if [ "$limit" -lt 10 ]; then
    printf '{"part": "%s", "status": "skipped", "reason": "out of time (--budget %s s)"}\n' "$name" "$BUDGET" > "$WORK/parts/$name.json"
    return
  fi
  local started=$SECONDS code=0
  timeout --kill-after=5 "$limit" "$@" >> "$LOG" 2>&1 || code=$?
  if [ "$code" != 0 ] || [ ! -s "$WORK/parts/$name.json" ]; then
    local reason="exit $code"; [ "$code" = 124 ] || [ "$code" = 137 ] && reason="timed out after $limit s"
    printf '{"part": "%s", "status": "failed", "reason": "%s", "seconds": %d}\n' "$name" "$reason" $(( SECONDS - started )) > "$WORK/parts/$name.json"
  fi
}

overhead() {  # overhead NAME TIMEOUT METHODS PRECISION [--extra OVERRIDES...]
  local name=$1 limit=$2 methods=$3 precision=$4; shift 4
  # shellcheck disable=SC2086  # METHODS is a list
  part "$name" "$limit" "$PYTHON" scripts/bench_overhead.py --trainer "$TRAINER" --precision "$precision" \
    --methods $methods --source mnist --target usps --data-root "$DATA" --batch-size "$BATCH" --steps "$STEPS" \
    --warmup "$WARMUP" --repeats "$REPEATS" --json "$WORK/parts/$name.json" "$@"
}

# Time to accuracy: the clock starts before `lepton train` is launched and stops when it has exited
# (metrics.json written), so start-up, decoding the data (empty cache), evaluation and test count.
read -r -d '' TIME_TO_ACCURACY <<'EOF'
import json, subprocess, sys, time
out, run, method, python, *command = sys.argv[1:]
started = time.perf_counter()
subprocess.run([python, "-m", "lepton_cli", "train", *command, f"method={method}", f"hydra.run.dir={run}"], check=True)
seconds = time.perf_counter() - started
metrics = json.loads(open(f"{run}/metrics.json").read())
budget = " ".join(arg for arg in command if arg.startswith(("trainer.max", "data.")) and not arg.startswith("data.root"))
open(out, "w").write(json.dumps({"part": f"tta_{method}", "status": "ok", "method": method, "seconds": round(seconds, 1),
                                 "target_acc": metrics["target/acc"], "steps": metrics.get("steps"), "budget": budget,
                                 "train_wall_time_s": metrics.get("wall_time_s")}))
EOF
tta() {
  part "tta_$1" 75 "$PYTHON" -c "$TIME_TO_ACCURACY" "$WORK/parts/tta_$1.json" "$WORK/tta_$1" "$1" "$PYTHON" \
    source=mnist target=usps data.root="$DATA" trainer="$TRAINER" seed=0 report=false "${TTA[@]}"
}

# In order of importance, since the deadline shortens the last parts when earlier ones run long.
# Compiled runs: one pair each (compiling takes longer than the timed steps).
overhead overhead_fp32 80 "source_only dann" 32-true
overhead overhead_bf16 70 "source_only dann" bf16-mixed
tta dann
overhead reduce_overhead 110 "dann source_only" bf16-mixed --repeats 1 --extra trainer.compile=reduce-overhead
tta "$BEST"
overhead compile 80 dann bf16-mixed --repeats 1 --extra trainer.compile=true
overhead channels_last_off 35 dann bf16-mixed --channels 3 --extra trainer.channels_last=false
overhead channels_last_on 35 dann bf16-mixed --channels 3 --extra trainer.channels_last=true

"$PYTHON" - "$WORK/parts" "$OUT" "$CPU" "$ARGS" >> "$LOG" 2>&1 <<'EOF'
"""Merge the parts into results.json and results.md, each row judged against its target."""
import json, platform, sys
from datetime import datetime, timezone
from pathlib import Path

import torch

parts_dir, out, cpu = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
device = "CPU dry run (tiny steps: no number here means anything)" if cpu else torch.cuda.get_device_name()
header = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
          "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": ("scripts/gpu_bench.sh " + sys.argv[4]).strip()}
parts = {}
for path in sorted(parts_dir.glob("*.json")):
    data = json.loads(path.read_text())
    parts[path.stem] = data if isinstance(data, dict) else {"part": path.stem, "status": "ok", "rows": data}

def target(name, row):
    if name == "reduce_overhead":
        return "≥ 150,000 images/s", row["lepton_median"] >= 150_000
    if name.startswith("overhead") or name == "compile":
        return "≥ 0.9× eager loop", row["ratio_median"] >= 0.9
    return "–", None

lines = [f"Device: {device}; torch {header['torch']}; {header['date']}; `{header['command']}`", "",
         "| part | method | setting | hand-written eager images/s | lepton images/s | ratio | target | met |",
         "|---|---|---|---|---|---|---|---|"]
for name, part in parts.items():
    for row in part.get("rows", []):
        goal, met = target(name, row)
        row["target"], row["met"] = goal, met
        setting = " ".join([row["precision"], *([f"{row['channels']} channels"] if row["channels"] != 1 else []), *row["extra"]])
        lines.append(f"| {name} | {row['method']} | {setting} | {row['handwritten_median']:,.0f} | {row['lepton_median']:,.0f} | "
                     f"{row['ratio_median']:.2f}× | {goal} | {'–' if met is None else 'yes' if met else 'no'} |")
lines += ["", "| part | method | seconds, command to metrics | target acc % (last weights) | budget | target | met |",
          "|---|---|---|---|---|---|---|"]
for name, part in parts.items():
    if name.startswith("tta_") and part["status"] == "ok":
        part["met"] = part["target_acc"] >= 0.95 and part["seconds"] < 60
        lines.append(f"| {name} | {part['method']} | {part['seconds']:.1f} | {100 * part['target_acc']:.1f} | {part['budget']} | "
                     f"≥ 95% in < 60 s | {'yes' if part['met'] else 'no'} |")
failed = [f"- {name}: {part['status']}, {part['reason']}" for name, part in parts.items() if part["status"] != "ok"]
lines += ["", "Failed or skipped parts (see log.txt):" if failed else "Every part ran.", *failed]
(out / "results.json").write_text(json.dumps({**header, "parts": parts}, indent=1))
(out / "results.md").write_text("\n".join(lines) + "\n")
EOF
cat "$OUT/results.md" 2>/dev/null || { echo "gpu_bench.sh: the results could not be written (see $LOG)" >&2; exit 1; }
