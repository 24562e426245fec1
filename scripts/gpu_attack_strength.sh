#!/usr/bin/env bash
# FALLBACK, for this project's lent device machine only (docs/SCALE.md, "Two ways"); bench/ablation.py has no Ray
# path: on a machine you can install on, run the same bench/ablation.py command there directly.
# One call on a lent GPU machine (device `run`, 10-minute limit): the attack-strength measurements of issue 12 that
# a 2-core CPU cannot finish (each variant = 20 configs x 2 seeds x up to 2,000 forward+backward evaluations).
# Stage first here with scripts/gpu_stage.sh, then run there:
#   bash scripts/gpu_attack_strength.sh        (carry [".dev", "bench/results/ablation.csv"]; CSV lands in $OUT)
# Every variant's configs (x restarts) train as one batch; --time-budget cancels the batch in flight at the
# deadline and keeps only finished rows, so a rerun resumes where the slot ended. Back here:
#   cp <files_at>/ablation.csv bench/results/ablation.csv && make docs
set -u
T0=$(date +%s)
LIMIT=${LIMIT:-560}
OUTD=${OUT:-/tmp/gpu-out}; mkdir -p "$OUTD"
PY=${PY:-python3}
export PYTHONPATH="$PWD/.dev/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log="$OUTD/log.txt"
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$log"; }
trap 'cp bench/results/ablation.csv "$OUTD/" 2>/dev/null; say "done"' EXIT
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee -a "$log"
# Variants in the order of what each answers (see bench/ablation.py for the names):
VARIANTS=${VARIANTS:-"adam-r1 adam-r8 apgd-r8 apgd-r1 adam-r8-logprob-random adam-r8-target_ce adam-r8-margin_ce"}  # -st left the library (bench/ablation.py)
for v in $VARIANTS; do
  [ "$(left)" -gt 30 ] || break
  say "variant $v (224, 42x42, image)"
  $PY bench/ablation.py --variants "$v" --configs 20 --seeds 1 2 --batch 40 --device cuda --threads 4 \
      --time-budget "$(( $(left) - 20 ))" >>"$log" 2>&1
done
