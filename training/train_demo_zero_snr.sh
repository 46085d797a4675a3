#!/usr/bin/env bash
# Issue 17, the latent stage's parameterisation: the 256 px demo cascade (training/train_demo256.sh's folder,
# or a copy of the bundle) fine-tuned from epsilon prediction into v-prediction with zero terminal SNR and
# trailing timesteps (Lin et al. 2024), coordinate channels and no clip (preset demo); tokenizer and encoder kept.
# Every line resumes with --resume, so the run spreads over sessions; training/train_demo_balanced.sh continues.
# Usage: bash training/train_demo_zero_snr.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-runs/demo256/epsilon}
out=${2:-runs/demo_zero_snr}
shift 2 || shift $# || true
data=data/phantom512
[ -f "$data/manifest.csv" ] || python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2
[ -d "$out/model" ] || { mkdir -p "$out"; cp -r "$source_model" "$out/model"; }
python -m training.train_latent_diffusion --manifest "$data/manifest.csv" --out "$out/model" --preset demo --seed 0 \
    --mixed-precision bf16 --latent-keep-encoder --latent-reschedule --max-steps 800 --batch-size 16 --lr 2e-4 \
    --warmup-steps 50 --lr-schedule cosine --validate-every 400 --sample-every 400 --checkpoint-every 100 "$@"
