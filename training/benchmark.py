"""Training throughput per stage and preset: ``python -m training.benchmark [--presets tiny,demo] [--out FILE.json]``.

(Kept beside the trainer: the library's own benchmark never imports training code.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def bench_training(presets: tuple[str, ...] = ("tiny", "demo"), steps: int = 4) -> dict[str, object]:
    """Training throughput (images/s) per stage and preset on phantom data, fp32."""
    import dataclasses

    from cxr_studio.data.phantom import write_dataset
    from training.config import TrainConfig
    from training.loop import Trainer
    from training.stages import build_task

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in presets:
            from cxr_studio.config import preset

            size = preset(name).output_size
            manifest = write_dataset(Path(folder) / f"data-{name}", n=24, size=size, seed=0, quiet=True)
            per_stage = {}
            for stage, batch in (("autoencoder", 8), ("latent", 16), ("super_res", 8)):
                base = TrainConfig(stage=stage, manifest=str(manifest), out=str(Path(folder) / f"model-{name}"), preset=name, max_steps=steps + 1,
                                   batch_size=batch, log_every=1, sample_every=10**6, validate_every=10**6, checkpoint_every=10**6, sr_crop=min(128, size))
                task = build_task(base)
                trainer = Trainer(dataclasses.replace(base), task)
                trainer.run()
                lines = [json.loads(l) for l in (base.run_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
                seconds = lines[-1]["seconds"] - lines[0]["seconds"]
                per_stage[stage] = {"batch": batch, "seconds_per_step": seconds / (len(lines) - 1), "images_per_s": batch * (len(lines) - 1) / seconds}
                print(f"  train {name}/{stage}: {json.dumps(per_stage[stage])}", file=sys.stderr, flush=True)
            results[name] = per_stage
    return results



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny,demo")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from cxr_studio.benchmark import machine

    results = {"machine": machine(), "training": bench_training(tuple(args.presets.split(",")), steps=args.steps)}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
