#!/usr/bin/env bash
# Issue 17, experiment: the bundle's latent stage (runs/balanced/model, float32) fine-tuned with the loss weighted
# inside each image's finding and device masks (--region-weight; the phantom writes finding_masks/ since this
# change, so an older data/phantom512 is rendered again: the same images, plus the masks). Nodules cover 1-2
# latent cells and were drawn mass-sized; the question is whether weighting them fixes that in a few hundred steps.
# Resumes with --resume. Exported to OUT_DIR/bundle like the bundle (float16, UniPC 10, guidance 2 at t <= 500).
# Usage: bash training/train_demo_regions.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-runs/balanced/model}
out=${2:-runs/regions}
shift 2 || shift $# || true
data=data/phantom512
[ -f "$data/finding_masks/phantom_0_003999.png" ] ||
    python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2
[ -d "$out/model" ] || { mkdir -p "$out"; cp -r "$source_model" "$out/model"; }
python -m training.train_latent_diffusion --manifest "$data/manifest.csv" --out "$out/model" --preset demo --seed 2 \
    --latent-keep-encoder --balance-sides --region-weight 10 --max-steps 300 --batch-size 16 --lr 1e-4 \
    --warmup-steps 20 --lr-schedule cosine --validate-every 300 --sample-every 300 --checkpoint-every 50 \
    --mixed-precision auto "$@"
python -m training.export --model "$out/model" --out "$out/bundle" --fp16 --image-size 256 --name demo --sampler unipc \
    --steps 10 --guidance 2 --guidance-max-timestep 500 --sr-sampler ddim --sr-steps 6
