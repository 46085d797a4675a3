#!/usr/bin/env bash
# The recipe of the bundled demo cascade (assets/demo), top to bottom. Every training line resumes with --resume
# (bash training/train_demo.sh OUT_DIR --resume continues where a run stopped); a folder that exists is not made again.
#   1. data: 4,000 phantoms at 512 px (the first 4,000 cases of seed 0)
#   2. every stage at 128 px first (preset demo128: 4x fewer latent positions than 256 px, so about 4x faster)
#   3. the same weights moved to a 256 px first stage with x2 super-resolution to 512 px (preset demo_eps)
#   4. the latent stage moved to v-prediction with zero terminal SNR and coordinate channels (preset demo)
#   5. the latent stage fine-tuned with side-balanced draws, twice (seeds 1 and 3)
#   6. the latent stage given layout channels and fine-tuned on layouts (the phantom's boxes and the rule's)
#   7. exported as the bundle: float16, UniPC 10 steps, guidance 2 at t <= 500, the layout at t >= 300, DDIM 2
#      super-resolution steps
# Usage: bash training/train_demo.sh [OUT_DIR] [--resume]   (BUNDLE_DIR: where step 7 writes; default OUT_DIR/bundle)
set -euo pipefail
out=${1:-runs/demo}
shift || true
data=data/phantom512

# 1. Data
[ -f "$data/manifest.csv" ] || python -m cxr_studio.data.phantom --n 4000 --size 512 --seed 0 --out "$data" --workers 2

# 2. 128 px: autoencoder, latent stage, decoder alone (encoder frozen: the latents stay), x4 super-resolution
small=(--manifest "$data/manifest.csv" --out "$out/model128" --preset demo128 --seed 0 "$@")
python -m training.train_autoencoder "${small[@]}" --max-steps 800 --batch-size 8 --lr 2e-4 --warmup-steps 50
python -m training.train_latent_diffusion "${small[@]}" --max-steps 5000 --batch-size 16 --lr 2e-4 --warmup-steps 100
python -m training.train_autoencoder "${small[@]}" --ae-freeze-encoder --max-steps 1400 --batch-size 8 --lr 1e-4 \
    --warmup-steps 50
python -m training.train_autoencoder "${small[@]}" --ae-freeze-encoder --max-steps 3400 --batch-size 8 --lr 1e-4 \
    --warmup-steps 50 --lr-schedule cosine --validate-every 500 --sample-every 500 --resume  # 2,000 more, cosine
python -m training.train_super_resolution "${small[@]}" --sr-reinit --max-steps 3000 --batch-size 8 --sr-crop 128 --lr 2e-4 \
    --warmup-steps 100
python -m training.train_super_resolution "${small[@]}" --max-steps 600 --batch-size 8 --sr-crop 128 --lr 1e-4 \
    --warmup-steps 10 --sr-low-res autoencoder

# 3. 256 px with x2 super-resolution: the same weights, each stage fine-tuned there. Steps 3 and 4 ran under bf16
#    autocast, as written here; on a CPU without native bf16 that is several times slower than --mixed-precision auto
[ -d "$out/model256" ] || python -m training.export --model "$out/model128" --out "$out/model256" --image-size 256 \
    --sr-factor 2 --name demo_eps
big=(--manifest "$data/manifest.csv" --out "$out/model256" --preset demo_eps --seed 0 --mixed-precision bf16 "$@")
python -m training.train_latent_diffusion "${big[@]}" --latent-keep-encoder --max-steps 3900 --batch-size 16 --lr 1e-4 \
    --warmup-steps 50 --lr-schedule cosine --validate-every 300 --sample-every 300
python -m training.train_autoencoder "${big[@]}" --ae-freeze-encoder --max-steps 150 --batch-size 8 --lr 5e-5 \
    --warmup-steps 15 --lr-schedule cosine --validate-every 75 --sample-every 150
python -m training.train_super_resolution "${big[@]}" --max-steps 600 --batch-size 8 --sr-crop 128 --lr 1e-4 \
    --warmup-steps 20 --lr-schedule cosine --validate-every 300 --sample-every 600
python -m training.train_super_resolution "${big[@]}" --max-steps 150 --batch-size 4 --sr-crop 128 --lr 5e-5 \
    --warmup-steps 10 --sr-low-res autoencoder --validate-every 150 --sample-every 150

# 4.-6. The latent stage alone, each phase in a folder of its own (tokenizer and report encoder kept)
latent() {  # latent FROM TO SEED STEPS LR [flags...]: copy FROM to TO once, then train TO's latent stage
    local from=$1 to=$2 seed=$3 steps=$4 lr=$5
    shift 5
    [ -d "$to" ] || cp -r "$from" "$to"
    python -m training.train_latent_diffusion --manifest "$data/manifest.csv" --out "$to" --preset demo --seed "$seed" \
        --latent-keep-encoder --max-steps "$steps" --batch-size 16 --lr "$lr" --lr-schedule cosine \
        --validate-every 400 --sample-every 400 --checkpoint-every 100 "$@"
}
# 4. v-prediction with zero terminal SNR, trailing timesteps, two coordinate channels, no clip (preset demo)
latent "$out/model256" "$out/zero_snr" 0 800 2e-4 --latent-reschedule --warmup-steps 50 --mixed-precision bf16 "$@"
# 5. side-balanced draws: every one-sided item seen as often on each side (the phantom puts 85 % of pacemakers left)
latent "$out/zero_snr" "$out/balanced" 1 1000 1e-4 --balance-sides --warmup-steps 20 "$@"
latent "$out/balanced" "$out/balanced2" 3 1000 1e-4 --balance-sides --warmup-steps 20 "$@"
# 6. layout channels (zero weights), trained on the phantom's boxes (half) and the rule's layouts (half); a layout
#    is dropped with its report and, 10 % of the time, on its own
latent "$out/balanced2" "$out/layout" 4 800 1.5e-4 --balance-sides --layout --layout-truth 0.5 --layout-dropout 0.1 \
    --warmup-steps 20 "$@"

# 7. The bundle
python -m training.export --model "$out/layout" --out "${BUNDLE_DIR:-$out/bundle}" --fp16 \
    --sampler unipc --steps 10 --guidance 2 --guidance-max-timestep 500 --layout-min-timestep 300 --sr-sampler ddim \
    --sr-steps 2
