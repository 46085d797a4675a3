#!/usr/bin/env bash
# The second half of the demo recipe (issue 3): the 128 px demo128 training folder (bash training/train_demo.sh)
# moved to a 256 px first stage with x2 super-resolution to 512 px (the same weights, renamed to the demo
# preset), then each stage fine-tuned there with bf16 autocast (1.6x faster on the development CPU), then
# exported as assets/demo. Every line resumes with --resume, so the work spreads over sessions; a different
# --max-steps continues the cosine learning rate on the new curve.
# Usage: bash training/train_demo256.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-runs/demo/model128}
out=${2:-runs/demo256}
shift 2 || shift $# || true
data=data/phantom512
[ -d "$out/model" ] || python -m training.export --model "$source_model" --out "$out/model" --image-size 256 --sr-factor 2 --name demo_eps
big=(--manifest "$data/manifest.csv" --out "$out/model" --preset demo_eps --seed 0 --mixed-precision bf16 "$@")
# the latent UNet on 64x64 latents, the tokenizer and report encoder kept. The bundle's run was resumed
# with a changing end of its cosine: 625 steps of --max-steps 1200, to 1,500, to 2,105 of 5,000, then 3,900
python -m training.train_latent_diffusion "${big[@]}" --latent-keep-encoder --max-steps 3900 --batch-size 16 --lr 1e-4 --warmup-steps 50 \
    --lr-schedule cosine --validate-every 300 --sample-every 300
# the decoder at 256 px, encoder frozen (the latent scale is kept)
python -m training.train_autoencoder "${big[@]}" --ae-freeze-encoder --max-steps 150 --batch-size 8 --lr 5e-5 --warmup-steps 15 \
    --lr-schedule cosine --validate-every 75 --sample-every 150
# x2 super-resolution from the x4 weights: bicubic pairs, then Cheff's fine-tuning on reconstructions
python -m training.train_super_resolution "${big[@]}" --max-steps 600 --batch-size 8 --sr-crop 128 --lr 1e-4 --warmup-steps 20 \
    --lr-schedule cosine --validate-every 300 --sample-every 600
python -m training.train_super_resolution "${big[@]}" --max-steps 150 --batch-size 4 --sr-crop 128 --lr 5e-5 --warmup-steps 10 \
    --sr-low-res autoencoder --validate-every 150 --sample-every 150
# the first (epsilon) phase, exported as the first bundle was (float16); training/train_demo_zero_snr.sh continues from it
python -m training.export --model "$out/model" --out "$out/epsilon" --fp16 --sampler ddim --steps 25 --sr-sampler ddim --sr-steps 6
