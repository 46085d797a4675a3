#!/usr/bin/env bash
# Issue 17, second phase of the latent stage: the 800-step v-prediction / zero-SNR model of
# training/train_demo_zero_snr.sh (its exported folder) fine-tuned with side-balanced draws (--balance-sides:
# the phantom puts 85 % of pacemakers on the patient's left, and the first phase drew every right pacemaker left).
# Resumes with --resume; the result is exported as the bundle (assets/demo, float16, UniPC 10 steps, guidance 2
# at timesteps t <= 500 only; BUNDLE_DIR elsewhere). SEED (default 1) seeds the draws: train_demo_longer.sh runs this
# phase again from its result with SEED=3.
# Usage: [SEED=N] [BUNDLE_DIR=DIR] bash training/train_demo_balanced.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-runs/demo_zero_snr/model}
out=${2:-runs/balanced}
shift 2 || shift $# || true
data=data/phantom512
[ -f "$data/manifest.csv" ] || python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2
[ -d "$out/model" ] || { mkdir -p "$out"; cp -r "$source_model" "$out/model"; }
python -m training.train_latent_diffusion --manifest "$data/manifest.csv" --out "$out/model" --preset demo --seed "${SEED:-1}" \
    --latent-keep-encoder --balance-sides --max-steps 1000 --batch-size 16 --lr 1e-4 --warmup-steps 20 \
    --lr-schedule cosine --validate-every 500 --sample-every 500 --checkpoint-every 100 --mixed-precision auto "$@"
python -m training.export --model "$out/model" --out "${BUNDLE_DIR:-assets/demo}" --fp16 --image-size 256 --name demo --sampler unipc --steps 10 \
    --guidance 2 --guidance-max-timestep 500 --sr-sampler ddim --sr-steps 6
