#!/usr/bin/env bash
# Issue 17, experiment: the bundle's latent stage (runs/balanced/model, float32) fine-tuned with a findings embedding
# (--findings-embedding: the report's sided findings, found by rule, as a 16-entry vector added to the timestep
# embedding, which reaches every ResNet block at every latent resolution; cross-attention reaches only 32 x 32 and
# 16 x 16). Its output layer starts at zero, so step 0 is the bundle. The control is the same 500 steps without it
# (training/train_demo_side_tokens.sh without --side-tokens, OUT_DIR runs/more): same seed, draws and schedule.
# Reuses SOURCE_MODEL's latent cache when it has one. Resumes with --resume. Exported to OUT_DIR/bundle like the
# bundle (float16, UniPC 10, guidance 2 at t <= 500).
# Usage: bash training/train_demo_findings.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-runs/balanced/model}
out=${2:-runs/findings}
shift 2 || shift $# || true
data=data/phantom512
[ -f "$data/manifest.csv" ] || python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2
[ -d "$out/model" ] || { mkdir -p "$out"; cp -r "$source_model" "$out/model"; }
cache="$source_model.runs/latent"
if [ -d "$cache/latents-train" ] && [ ! -d "$out/model.runs/latent/latents-train" ]; then
    mkdir -p "$out/model.runs/latent"
    cp -r "$cache/latents-train" "$cache/latents-val" "$out/model.runs/latent/"
fi
python -m training.train_latent_diffusion --manifest "$data/manifest.csv" --out "$out/model" --preset demo --seed 2 \
    --latent-keep-encoder --balance-sides --findings-embedding --max-steps 500 --batch-size 16 --lr 1e-4 \
    --warmup-steps 20 --lr-schedule cosine --validate-every 250 --sample-every 500 --checkpoint-every 50 \
    --mixed-precision auto "$@"
python -m training.export --model "$out/model" --out "$out/bundle" --fp16 --image-size 256 --name demo --sampler unipc \
    --steps 10 --guidance 2 --guidance-max-timestep 500 --sr-sampler ddim --sr-steps 6
