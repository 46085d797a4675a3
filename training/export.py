"""Copy a trained cascade into a bundle: ``python -m training.export --model DIR --out assets/demo [--fp16]``.

Half-precision weights halve the folder (the demo must stay small); they load as float32.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from cxr_studio import CXRStudio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args(argv)
    studio = CXRStudio.from_pretrained(args.model)
    model_hash = studio.save_pretrained(args.out, dtype=torch.float16 if args.fp16 else None)
    print(f"wrote {args.out} ({studio.config.name}@{model_hash[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
