#!/usr/bin/env bash
# Issue 17, third phase: the second phase (training/train_demo_balanced.sh: side-balanced draws, 1,000 steps, lr 1e-4
# cosine) run again from its result with another seed (session 9's control showed 500 such steps raise faithfulness:
# mAUC 0.948 -> 0.958, prompt sheet 82.0 -> 85.9 %). Starts from SOURCE_MODEL (default: the float16 bundle, which
# loads as float32; tokenizer, report encoder, autoencoder and super-resolution kept). Resumes with --resume.
# Exported at the bundle's sampling setting to BUNDLE_DIR (default OUT_DIR/bundle; training/train_demo.sh sets
# assets/demo: this phase is the bundle `demo@ec34fed766c2`, trained from `demo@8947411a0697`).
# Usage: [BUNDLE_DIR=DIR] bash training/train_demo_longer.sh [SOURCE_MODEL] [OUT_DIR] [--resume]
set -euo pipefail
source_model=${1:-assets/demo}
out=${2:-runs/longer}
shift 2 || shift $# || true
SEED=3 BUNDLE_DIR="${BUNDLE_DIR:-$out/bundle}" bash training/train_demo_balanced.sh "$source_model" "$out" "$@"
