#!/usr/bin/env bash
# Trains the built-in model from scratch and exports it to assets/model (needs torch and
# transformers from PyPI). Seven stages, about 630 minutes on this 2-core machine:
#   1. 85 min, one thread: curriculum from clean shapes to full clutter (scripts/shapes/train.py),
#   2. 30 min, one thread: full clutter only, lower learning rate, from stage 1's weights,
#   3. 130 min, one thread: full clutter, a second cosine cycle from stage 2's weights,
#   4. 95 min, two threads, bfloat16 autocast: a third cycle from stage 3's weights, with half
#      of each batch drawn by loss (hard examples) and 35 % of the images in other drawing
#      styles (outlined or bordered figures, other proportions, calmer backgrounds),
#   5. 125 min, two threads, bfloat16: a fourth cycle from stage 4's weights, half of the images
#      in other styles and 30 % passed through JPEG (quality 50-95),
#   6. 80 min, two threads, bfloat16: a fifth cycle from stage 5's weights, 60 % of the images in
#      broader other styles (thinner rings, larger figures, borders inside the edge) and on
#      calmer backdrops (a flat colour, an out-of-focus colour field),
#   7. 85 min, two threads, bfloat16: a sixth cycle from stage 6's weights, 70 % of the images in
#      the broader styles, four in five of them bordered or outlined rather than filled.
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
python3 scripts/shapes/train.py --out "$work/stage3" --work "$work" \
  --init "$work/final2.pt" --final-name final3.pt \
  --minutes 130 --layers 4 --threads 1 --seed 2 \
  --start-difficulty 1 --lr 4e-4 --lr-end 1e-5 --warmup 20
python3 scripts/shapes/train.py --out "$work/stage4" --work "$work" \
  --init "$work/final3.pt" --final-name final4.pt \
  --minutes 95 --layers 4 --threads 2 --seed 4 \
  --start-difficulty 1 --lr 2.5e-4 --lr-end 1e-5 --warmup 20 \
  --hard-frac 0.5 --bf16 --variety 0.35
python3 scripts/shapes/train.py --out "$work/stage5" --work "$work" \
  --init "$work/final4.pt" --final-name final5.pt \
  --minutes 125 --layers 4 --threads 2 --seed 5 \
  --start-difficulty 1 --lr 2e-4 --lr-end 1e-5 --warmup 20 \
  --hard-frac 0.5 --bf16 --variety 0.5 --jpeg 0.3
python3 scripts/shapes/train.py --out "$work/stage6" --work "$work" \
  --init "$work/final5.pt" --final-name final6.pt \
  --minutes 80 --layers 4 --threads 2 --seed 6 \
  --start-difficulty 1 --lr 1.5e-4 --lr-end 1e-5 --warmup 20 \
  --hard-frac 0.5 --bf16 --variety 0.6 --backdrops --broad --jpeg 0.3
python3 scripts/shapes/train.py --out assets/model --work "$work" \
  --init "$work/final6.pt" --final-name final7.pt \
  --minutes 85 --layers 4 --threads 2 --seed 7 \
  --start-difficulty 1 --lr 1.5e-4 --lr-end 1e-5 --warmup 20 \
  --hard-frac 0.5 --bf16 --variety 0.7 --line-share 0.8 --backdrops --broad --jpeg 0.3
for s in 1 2 3 4 5 6; do
  cp "$work/stage$s/train_log.txt" "assets/model/train_log_stage$s.txt"
done
