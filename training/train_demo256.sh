#!/usr/bin/env bash
# Moving the demo cascade to a 256 px first stage with x2 super-resolution to 512 px (issue 3), in
# progress: the same weights as the 128 px demo's training folder (bash training/train_demo.sh), copied at
# the new size, then each stage fine-tuned there. bf16 autocast (1.6x faster on the development CPU). Every
# line resumes with --resume, so the work spreads over sessions; a larger --max-steps continues the
# cosine learning rate on the longer curve.
# Usage: bash training/train_demo256.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-runs/demo/model}
out=${2:-runs/demo256}
shift 2 || shift $# || true
data=data/phantom512
[ -d "$out/model" ] || python -m training.export --model "$source_model" --out "$out/model" --image-size 256 --sr-factor 2
big=(--manifest "$data/manifest.csv" --out "$out/model" --preset demo --seed 0 --mixed-precision bf16 "$@")
# the latent UNet on 64x64 latents, the tokenizer and report encoder kept (the first 625 steps of this
# run had --max-steps 1200, then it was resumed with 1500)
python -m training.train_latent_diffusion "${big[@]}" --latent-keep-encoder --max-steps 1500 --batch-size 16 --lr 1e-4 --warmup-steps 50 \
    --lr-schedule cosine --validate-every 300 --sample-every 300
# the decoder at 256 px, encoder frozen (the latent scale is kept)
python -m training.train_autoencoder "${big[@]}" --ae-freeze-encoder --max-steps 150 --batch-size 8 --lr 5e-5 --warmup-steps 15 \
    --lr-schedule cosine --validate-every 75 --sample-every 150
# x2 super-resolution from the x4 weights: bicubic pairs, then Cheff's fine-tuning on reconstructions
python -m training.train_super_resolution "${big[@]}" --max-steps 600 --batch-size 8 --sr-crop 128 --lr 1e-4 --warmup-steps 20 \
    --lr-schedule cosine --validate-every 300 --sample-every 600
python -m training.train_super_resolution "${big[@]}" --max-steps 150 --batch-size 4 --sr-crop 128 --lr 5e-5 --warmup-steps 10 \
    --sr-low-res autoencoder --validate-every 150 --sample-every 150
