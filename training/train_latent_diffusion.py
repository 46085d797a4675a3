"""Train the report tokenizer, report encoder and latent UNet on cached latents.

``python -m training.train_latent_diffusion --manifest M --out MODEL_DIR [--max-steps N] [--resume] ...``
"""

from __future__ import annotations

from collections.abc import Sequence

from training._cli import main_for_stage
from training.stages import build_task


def main(argv: Sequence[str] | None = None) -> int:
    return main_for_stage("latent", __doc__.splitlines()[0], argv, build=build_task)


if __name__ == "__main__":
    raise SystemExit(main())
