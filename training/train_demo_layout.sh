#!/usr/bin/env bash
# The layout phase of the latent stage: the bundle's latent UNet gets one input channel per item group of
# cxr_studio.layout (zero weights: it draws what it drew before), then is fine-tuned with side-balanced draws on
# layouts: half the examples take the phantom's own boxes (the manifest's boxes column), half the rule's layout
# from the report; a layout is dropped with its report (guidance's unconditional half) and, 10 % of the time, on
# its own. Starts from SOURCE_MODEL (default: the float16 bundle without layout channels, which loads as float32);
# resumes with --resume; exported at the bundle's sampling setting to BUNDLE_DIR (default OUT_DIR/bundle).
# Usage: [BUNDLE_DIR=DIR] bash training/train_demo_layout.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-assets/demo}
out=${2:-runs/layout}
shift 2 || shift $# || true
data=data/phantom512
[ -f "$data/manifest.csv" ] || python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2
[ -d "$out/model" ] || { mkdir -p "$out"; cp -r "$source_model" "$out/model"; }
python -m training.train_latent_diffusion --manifest "$data/manifest.csv" --out "$out/model" --preset demo --seed 4 \
    --latent-keep-encoder --balance-sides --layout --layout-truth 0.5 --layout-dropout 0.1 --max-steps 800 \
    --batch-size 16 --lr 1.5e-4 --warmup-steps 20 --lr-schedule cosine --validate-every 400 --sample-every 400 \
    --checkpoint-every 100 --mixed-precision auto "$@"
python -m training.export --model "$out/model" --out "${BUNDLE_DIR:-$out/bundle}" --fp16 --image-size 256 --name demo \
    --sampler unipc --steps 10 --guidance 2 --guidance-max-timestep 500 --sr-sampler ddim --sr-steps 6
