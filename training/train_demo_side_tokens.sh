#!/usr/bin/env bash
# Issue 17, third phase of the latent stage (an experiment; its result is in the model card): the side-balanced
# model of training/train_demo_balanced.sh fine-tuned 500 more steps with side tokens (--side-tokens: each report
# read after a token per sided finding or device and side that it names, added to the folder's tokenizer and
# report encoder). The control is the same command without --side-tokens (OUT_DIR runs/more), same seed and draws.
# Resumes with --resume. Usage: bash training/train_demo_side_tokens.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-runs/balanced/model}
out=${2:-runs/sides}
shift 2 || shift $# || true
data=data/phantom512
[ -f "$data/manifest.csv" ] || python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2
[ -d "$out/model" ] || { mkdir -p "$out"; cp -r "$source_model" "$out/model"; }
python -m training.train_latent_diffusion --manifest "$data/manifest.csv" --out "$out/model" --preset demo --seed 2 \
    --latent-keep-encoder --balance-sides --side-tokens --max-steps 500 --batch-size 16 --lr 1e-4 --warmup-steps 20 \
    --lr-schedule cosine --validate-every 250 --sample-every 500 --checkpoint-every 50 --mixed-precision auto "$@"
