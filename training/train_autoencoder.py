"""Train the autoencoder (L1 + SSIM + KL, optional PatchGAN).

``python -m training.train_autoencoder --manifest M --out MODEL_DIR [--max-steps N] [--resume] ...``
"""

from __future__ import annotations

from collections.abc import Sequence

from training._cli import main_for_stage
from training.stages import build_task


def main(argv: Sequence[str] | None = None) -> int:
    return main_for_stage("autoencoder", __doc__.splitlines()[0], argv, build=build_task)


if __name__ == "__main__":
    raise SystemExit(main())
