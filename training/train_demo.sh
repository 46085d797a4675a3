#!/usr/bin/env bash
# The recipe of the bundled demo cascade (assets/demo): a 4,000-image phantom set at 512 px, every stage
# trained at 128 px first (preset demo128, x4 super-resolution to 512 px: 4x fewer latent positions, so
# about 4x faster on a CPU), then moved to 256 px with x2 super-resolution and fine-tuned there
# (training/train_demo256.sh), then moved to v-prediction and side-balanced (issue 17, two phases). Re-running it with --resume
# continues where it stopped.
# The order in which the bundled weights were actually trained, over several sessions, is in assets/demo/MODEL_CARD.md.
# Usage: bash training/train_demo.sh [OUT_DIR] [--resume]
set -euo pipefail
out=${1:-runs/demo}
shift || true
data=data/phantom512
[ -f "$data/manifest.csv" ] || python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2
common=(--manifest "$data/manifest.csv" --out "$out/model128" --preset demo128 --seed 0 "$@")
python -m training.train_autoencoder "${common[@]}" --max-steps 800 --batch-size 8 --lr 2e-4 --warmup-steps 50
python -m training.train_latent_diffusion "${common[@]}" --max-steps 5000 --batch-size 16 --lr 2e-4 --warmup-steps 100
# decoder only, encoder frozen: the latents the latent stage learned stay as they are
python -m training.train_autoencoder "${common[@]}" --ae-freeze-encoder --max-steps 1400 --batch-size 8 --lr 1e-4 --warmup-steps 50
# ... then resumed to 3,400 steps with the learning rate decaying (cosine) to 0
python -m training.train_autoencoder "${common[@]}" --ae-freeze-encoder --max-steps 3400 --batch-size 8 --lr 1e-4 --warmup-steps 50 \
    --lr-schedule cosine --validate-every 500 --sample-every 500 --resume
# v-prediction SR (the demo preset's schedule); --sr-reinit only matters for a folder made before it
python -m training.train_super_resolution "${common[@]}" --sr-reinit --max-steps 3000 --batch-size 8 --sr-crop 128 --lr 2e-4 --warmup-steps 100
python -m training.train_super_resolution "${common[@]}" --max-steps 600 --batch-size 8 --sr-crop 128 --lr 1e-4 --warmup-steps 10 --sr-low-res autoencoder
# 256 px: the same weights moved, each stage fine-tuned there (epsilon prediction: the first bundle)
bash training/train_demo256.sh "$out/model128" "$out" "$@"
# the latent stage moved to v-prediction with zero terminal SNR, then trained with side-balanced draws (exported as
# assets/demo `demo@716209132760`), then 1,000 more side-balanced steps: exported as assets/demo (the bundle)
bash training/train_demo_zero_snr.sh "$out/epsilon" "$out/zero_snr" "$@"
bash training/train_demo_balanced.sh "$out/zero_snr/model" "$out/balanced" "$@"
BUNDLE_DIR=assets/demo bash training/train_demo_longer.sh "$out/balanced/model" "$out/longer" "$@"
