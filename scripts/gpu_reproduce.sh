#!/usr/bin/env bash
# FALLBACK, for this project's lent device machine only (docs/SCALE.md, "Two ways"): it reaches no package registry
# and takes at most 64 MiB of carried files, so Ray (a 76 MiB wheel, 240 MB installed) cannot get there. A machine
# or cluster that can `pip install` runs the same experiments with `python -m lab reproduce` itself, single,
# classes and crossmodel on every GPU at once with `--engine ray`, and needs neither this script nor gpu_collect.py.
# One call on a lent GPU machine (device `run`, 10-minute limit): the experiments that need ~10^6 model steps.
# Stage first here with scripts/gpu_stage.sh, then run there:
#   bash scripts/gpu_reproduce.sh            (carry [".dev", ".lavan-photos"]; results land in $OUT)
# Everything is cut by --time-budget, so each run ends inside the call and records the iteration cap it reached.
# Back here: mkdir /tmp/gpu && cat <files_at>/results.tgz.* | tar xzf - -C /tmp/gpu
#            .venv/bin/python scripts/gpu_collect.py /tmp/gpu      (merges the rows into reports/)
set -u
T0=$(date +%s)
LIMIT=${LIMIT:-570}                 # seconds this script may use in all
OUTD=${OUT:-/tmp/gpu-out}; mkdir -p "$OUTD"
R=${R:-/tmp/r}; rm -rf "$R"; mkdir -p "$R"
PY=${PY:-python3}
CAP=${CAP:-10000}; N=${N:-100}; UCAP=${UCAP:-5000}; CCAP=${CCAP:-1000}; SB=${SB:-100}; DEV=${DEV:-cuda}
export PYTHONPATH="$PWD/.dev/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export LAVAN_PHOTOS_DIR="$PWD/.lavan-photos"
log="$OUTD/log.txt"
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$log"; }
pack() {
  say "packing"
  # the device tool returns files of at most 16 MiB (8 files): split the archive (400 patches are ~30 MB)
  (cd "$R" && tar czf - --exclude=./quick . | split -b 15m - "$OUTD/results.tgz.") 2>>"$log"
  ls -la "$OUTD" >>"$log"
}
trap pack EXIT

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$log"
$PY -c "import torch, torchvision, attack; print('torch', torch.__version__, 'tv', torchvision.__version__, \
'cuda', torch.cuda.is_available(), 'photos', len(attack.sample_images()))" 2>&1 | tee -a "$log"
say "smoke"
$PY -m lab reproduce single --quick --device "$DEV" --out "$R/quick" --json >>"$log" 2>&1 || { say "smoke failed"; exit 3; }

say "speed bench"
timeout 100 $PY bench/speed.py --device "$DEV" --batch "$SB" --reps 3 --iters 10 --threads 4 >"$OUTD/speed.md" 2>>"$log"
say "speed rc=$?"

# Experiments side by side; the followers (fragility, transfer, saliency) need ~90 s at the end.
B=$(( $(left) - 100 ))
say "experiments, budget ${B}s each"
pids=()
for v in paper-network app-network paper-image app-image; do
  $PY -m lab reproduce single --variants "$v" --configs "$N" --batch "$N" --max-iter "$CAP" --device "$DEV" \
      --threads 2 --time-budget "$B" --out "$R/single-$v" >"$R/single-$v.log" 2>&1 &
  pids+=($!)
done
mkdir -p "$R/classes/patches"
cp reports/classes.csv "$R/classes/" && cp -r reports/patches/classes "$R/classes/patches/" 2>/dev/null
$PY -m lab reproduce classes --configs 3 --batch 60 --max-iter "$CCAP" --device "$DEV" --threads 2 \
    --time-budget "$B" --out "$R/classes" >"$R/classes.log" 2>&1 &
pids+=($!)
$PY -m lab reproduce universal --max-iter "$UCAP" --device "$DEV" --threads 2 --time-budget "$B" \
    --out "$R/universal" >"$R/universal.log" 2>&1 &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
say "experiments done"; tail -n 3 "$R"/*.log >>"$log"

# Followers over the merged single rows (resumable; what does not fit is finished on the CPU later)
mkdir -p "$R/all/patches/single"
head -n 1 "$R/single-paper-network/single.csv" >"$R/all/single.csv"
for v in paper-network app-network paper-image app-image; do
  tail -n +2 "$R/single-$v/single.csv" >>"$R/all/single.csv"
  cp "$R/single-$v/patches/single/"* "$R/all/patches/single/" 2>/dev/null
done
$PY -m lab reproduce single --report-only --variants paper-network app-network paper-image app-image \
    --configs "$N" --out "$R/all" >>"$log" 2>&1
for e in fragility transfer saliency; do
  t=$(( $(left) - 15 )); [ "$t" -gt 5 ] || break
  say "$e (${t}s at most)"
  timeout "$t" $PY -m lab reproduce "$e" --device "$DEV" --threads 4 --out "$R/all" >"$R/$e.log" 2>&1
  say "$e rc=$?"
done
