#!/usr/bin/env bash
# Trains the built-in model from scratch and exports it to assets/model (needs torch and
# transformers from PyPI). Three stages, about 245 minutes on one core:
#   1. 85 min: curriculum from clean shapes to full clutter (scripts/shapes/train.py),
#   2. 30 min: full clutter only, lower learning rate, from stage 1's weights,
#   3. 130 min: full clutter, a second cosine cycle from stage 2's weights.
# Each stage evaluates its export on held-out images (train_log.txt, README.md in its --out).
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${WORK:-/tmp/shapes-train}"
mkdir -p "$work"
python3 scripts/shapes/train.py --out "$work/stage1" --work "$work" \
  --minutes 85 --layers 4 --threads 1 --seed 0
python3 scripts/shapes/train.py --out "$work/stage2" --work "$work" \
  --init "$work/final.pt" --final-name final2.pt \
  --minutes 30 --layers 4 --threads 1 --seed 1 \
  --start-difficulty 1 --lr 3e-4 --lr-end 1e-5 --warmup 20
python3 scripts/shapes/train.py --out assets/model --work "$work" \
  --init "$work/final2.pt" --final-name final3.pt \
  --minutes 130 --layers 4 --threads 1 --seed 2 \
  --start-difficulty 1 --lr 4e-4 --lr-end 1e-5 --warmup 20
cp "$work/stage1/train_log.txt" assets/model/train_log_stage1.txt
cp "$work/stage2/train_log.txt" assets/model/train_log_stage2.txt
