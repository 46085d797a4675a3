"""The one training loop every stage uses: accelerate, AdamW with warm-up, accumulation, clipping, EMA,
crash-safe checkpoints, exact resume, validation, sample grids, metrics and a progress file.

Every step's randomness (noise, timesteps, dropout) comes from ``(seed, step)`` and the data order from
``(seed, epoch)``, so a run that is killed and resumed ends with the same weights as one that was not.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from cxr_studio import InputError
from cxr_studio.data.dataset import collate_skipping
from cxr_studio.files import write_atomic
from training.config import TrainConfig

log = logging.getLogger("training")
COMPLETE = "COMPLETE"


class Task(Protocol):
    """What a stage supplies to the loop."""

    modules: dict[str, torch.nn.Module]  # trained and exported (EMA weights)

    def train_dataset(self) -> Dataset: ...
    def val_dataset(self) -> Dataset | None: ...
    def loss(
        self, batch: dict[str, Any], *, step: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]: ...
    def samples(self, path: Path) -> None: ...  # a PNG grid for fixed inputs and seeds
    def export(self) -> None: ...  # write the trained modules into the model folder
    def sample_weights(self) -> np.ndarray | None: ...  # per training item, or None for plain epochs
    def extra_state(self) -> dict[str, Any]: ...  # e.g. a discriminator and its optimizer
    def load_extra_state(self, state: dict[str, Any]) -> None: ...


class BatchPlan(Sampler[list[int]]):
    """Batches of indices from global batch ``start`` on: epoch ``e`` is a permutation seeded by ``(seed, e)``,
    or, with ``weights`` (one per index), ``size`` draws with replacement in proportion to them, seeded alike;
    either way batch ``b`` is a function of ``(seed, b)`` alone, so a resumed run draws what it would have."""

    def __init__(
        self, size: int, batch_size: int, *, seed: int, start: int, stop: int, weights: np.ndarray | None = None
    ) -> None:
        self.size, self.batch_size, self.seed, self.start, self.stop = size, min(batch_size, size), seed, start, stop
        self.per_epoch = size // self.batch_size
        self.p = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
        if self.p is not None and self.p.shape != (size,):
            raise ValueError(f"{len(self.p)} weights for {size} items")

    def __iter__(self) -> Iterator[list[int]]:
        for batch in range(self.start, self.stop):
            epoch, position = divmod(batch, self.per_epoch)
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(self.size) if self.p is None else rng.choice(self.size, self.size, p=self.p)
            yield order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.stop - self.start


def learning_rate_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then constant or a cosine decay reaching 0 at ``max_steps``."""
    warmup = max(1, config.warmup_steps)
    if config.lr_schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=config.max_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))


class RankShare(Sampler[list[int]]):
    """Process ``rank``'s contiguous share of each global batch of ``plan`` (``num_processes`` equal shares)."""

    def __init__(self, plan: BatchPlan, *, rank: int, num_processes: int) -> None:
        self.plan, self.rank, self.num_processes = plan, rank, num_processes

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.plan:
            share = len(batch) // self.num_processes
            yield batch[self.rank * share : (self.rank + 1) * share]

    def __len__(self) -> int:
        return len(self.plan)


def step_generator(seed: int, step: int, device: torch.device, *, rank: int = 0) -> torch.Generator:
    """The generator for one optimizer step of process ``rank`` (also seeds dropout through the global RNG);
    process 0's stream is the single-process one, so one process and many share their first stream."""
    value = int(np.random.SeedSequence([seed, step, *([rank] if rank else [])]).generate_state(1, np.uint64)[0] >> 1)
    torch.manual_seed(value)
    return torch.Generator(device=device).manual_seed(value)


class Trainer:
    """Runs one stage from its config and task; ``run()`` returns the run folder."""

    def __init__(self, config: TrainConfig, task: Task, *, accelerator: Accelerator | None = None) -> None:
        self.config = config
        self.task = task
        self.accelerator = accelerator or make_accelerator(config)
        self.run_dir = config.run_dir
        self.stop_requested = False

    # --- checkpoints -------------------------------------------------------------------------------------

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (a folder without COMPLETE was cut off while writing)."""
        folder = self.run_dir / "checkpoints"
        found = [p for p in folder.glob("step-*") if (p / COMPLETE).is_file()] if folder.is_dir() else []
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(self, step: int, optimizer, scheduler, emas: dict[str, EMAModel]) -> Path:
        """The main process writes (every process holds the same weights and state); the others wait for it."""
        final = self.run_dir / "checkpoints" / f"step-{step:08d}"
        self._check_in_step()
        if self.sharded_optimizer:  # every process sends its share of the optimizer state to the main one
            optimizer.consolidate_state_dict(to=0)
        if self.accelerator.is_main_process:
            self._write_checkpoint(final, step, optimizer, scheduler, emas)
        self.accelerator.wait_for_everyone()
        return final

    def _write_checkpoint(self, final: Path, step: int, optimizer, scheduler, emas: dict[str, EMAModel]) -> None:
        folder = final.parent
        tmp = folder / f".tmp-step-{step:08d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, module in self.task.modules.items():
            save_file(
                {k: v.contiguous() for k, v in self.accelerator.unwrap_model(module).state_dict().items()},
                tmp / f"{name}.safetensors",
            )
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": {name: ema.state_dict() for name, ema in emas.items()},
            "extra": self.task.extra_state(),
        }
        torch.save(state, tmp / "training_state.pt")
        (tmp / "trainer.json").write_text(
            json.dumps({"step": step, "config": json.loads(self.config.to_json())}, indent=2)
        )
        for file in tmp.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        (tmp / COMPLETE).write_text("ok\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in self.checkpoints()[: -self.config.keep_checkpoints]:  # rotate only after the new one is complete
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, folder: Path, optimizer, scheduler, emas: dict[str, EMAModel]) -> int:
        for name, module in self.task.modules.items():
            self.accelerator.unwrap_model(module).load_state_dict(load_file(folder / f"{name}.safetensors"))
        state = torch.load(folder / "training_state.pt", weights_only=True)  # never unpickles code
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        for name, ema in emas.items():
            ema.load_state_dict(state["ema"][name])
        self.task.load_extra_state(state["extra"])
        return int(json.loads((folder / "trainer.json").read_text())["step"])

    # --- the loop ------------------------------------------------------------------------------------------

    def run(self) -> Path:
        cfg, acc = self.config, self.accelerator
        processes = acc.num_processes
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            record = {
                **json.loads(cfg.to_json()),
                "num_processes": processes,
                "effective_batch_size": cfg.batch_size * processes * cfg.grad_accum,  # images per optimizer step
            }
            write_atomic(self.run_dir / "config.json", json.dumps(record, indent=2).encode())
        acc.wait_for_everyone()
        if hasattr(self.task, "average_gradients"):  # a task's own optimizer (the GAN's discriminator) syncs too
            self.task.average_gradients = self._average_gradients
        dataset = self.task.train_dataset()
        if processes > 1:  # on its device before the optimizer sees it (ZeRO records where each shard lives)
            for module in self.task.modules.values():
                module.to(acc.device)
        params = [p for m in self.task.modules.values() for p in m.parameters() if p.requires_grad]
        optimizer = self._optimizer(self._parameters())
        scheduler = learning_rate_schedule(optimizer, cfg)
        # EMA warm-up (decay grows with the step count) so short runs are not dominated by the random init
        emas = {
            name: EMAModel(m.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=0.75)
            for name, m in self.task.modules.items()
        }
        start = 0
        if cfg.resume and self.checkpoints():
            start = self.load_checkpoint(self.checkpoints()[-1], optimizer, scheduler, emas)
            log.info("resumed %s from step %d", cfg.stage, start)
        elif not cfg.resume and self.checkpoints():
            raise InputError(
                f"{self.run_dir} already has checkpoints; pass --resume to continue or choose another --out."
            )
        for name, module in self.task.modules.items():
            if cfg.channels_last:  # NHWC convolutions: faster on recent GPUs (tensor cores) and oneDNN CPUs
                module.to(memory_format=torch.channels_last)
            self.task.modules[name] = self._prepare_module(module)
        # the scheduler stays ours: accelerate's wrapper steps it once per process, and the schedule counts steps
        if not self.sharded_optimizer:  # ZeRO's step already synchronises the processes' parameters
            optimizer = acc.prepare(optimizer)
        # one global batch per micro-step, shared out by rank; a set smaller than the batch gives all it has
        global_batch = min(cfg.batch_size * processes, len(dataset)) // processes * processes
        if global_batch == 0:
            raise InputError(f"{len(dataset)} training images cannot feed {processes} processes; use fewer processes.")
        plan = BatchPlan(
            len(dataset),
            global_batch,
            seed=cfg.seed,
            start=start * cfg.grad_accum,
            stop=cfg.max_steps * cfg.grad_accum,
            weights=self.task.sample_weights(),
        )
        shares = RankShare(plan, rank=acc.process_index, num_processes=processes)
        loader = DataLoader(dataset, batch_sampler=shares, collate_fn=collate_skipping, num_workers=0)
        self._install_signal_handlers()
        step, bad_steps, began = start, 0, time.perf_counter()
        progress = tqdm(
            total=cfg.max_steps, initial=start, desc=cfg.stage, disable=not acc.is_main_process, dynamic_ncols=True
        )
        self._progress(step, status="running")
        batches = iter(loader)
        while step < cfg.max_steps and not self.stop_requested:
            generator = step_generator(cfg.seed, step, acc.device, rank=acc.process_index)
            logs: dict[str, float] = {}
            finite = True
            for micro in range(cfg.grad_accum):
                batch = next(batches)
                if batch is None:  # every image of this batch was unreadable: skipped and counted
                    continue
                with acc.autocast():
                    loss, logs = self.task.loss(batch, step=step, generator=generator)
                    if not torch.isfinite(loss):
                        finite = False
                        break
                    acc.backward(loss / cfg.grad_accum)
            if processes > 1:  # every process takes the same decision: skip, stop, or step on the mean gradient
                finite, self.stop_requested = self._agree(finite, self.stop_requested)
                if finite:
                    self._average_gradients(params)
            if not finite:
                optimizer.zero_grad(set_to_none=True)
                bad_steps += 1
                log.warning("non-finite loss at step %d (%d in a row): step skipped", step, bad_steps)
                if bad_steps >= cfg.max_bad_steps:
                    self._progress(step, status="failed", error="non-finite loss")
                    raise FloatingPointError(
                        f"{cfg.stage}: the loss was NaN or infinite {bad_steps} steps in a row (last at step {step}); "
                        "lower --lr, check the data, or resume from the last checkpoint."
                    )
                step += 1
                continue
            bad_steps = 0
            if cfg.clip_grad > 0:
                logs["grad_norm"] = float(acc.clip_grad_norm_(params, cfg.clip_grad))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            for name, ema in emas.items():
                ema.step(acc.unwrap_model(self.task.modules[name]).parameters())
            step += 1
            progress.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                elapsed = time.perf_counter() - began
                rate = (step - start) / max(elapsed, 1e-9)
                record = {"step": step, "lr": scheduler.get_last_lr()[0], "seconds": round(elapsed, 2), **logs}
                self._metrics(record)
                progress.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}")
                self._progress(
                    step,
                    status="running",
                    loss=logs.get("loss"),
                    eta_s=(cfg.max_steps - step) / max(rate, 1e-9),
                    steps_per_s=rate,
                )
            if cfg.validate_every and (step % cfg.validate_every == 0 or step == cfg.max_steps):
                self._validate(step, emas)
            if cfg.sample_every and (step % cfg.sample_every == 0 or step == cfg.max_steps) and acc.is_main_process:
                grid = self.run_dir / "samples" / f"step-{step:08d}.png"
                self._with_ema(emas, lambda grid=grid: self.task.samples(grid))
            if step % cfg.checkpoint_every == 0:
                self.save_checkpoint(step, optimizer, scheduler, emas)
        progress.close()
        if self.stop_requested:
            self.save_checkpoint(step, optimizer, scheduler, emas)
            self._progress(step, status="stopped")
            log.info("stopped at step %d; resume with --resume", step)
            return self.run_dir
        self.save_checkpoint(step, optimizer, scheduler, emas)
        if acc.is_main_process:
            self._with_ema(emas, self.task.export)
        acc.wait_for_everyone()  # the next stage loads what was exported
        self._progress(step, status="finished")
        return self.run_dir

    # --- helpers -------------------------------------------------------------------------------------------

    @property
    def sharded_optimizer(self) -> bool:
        return self.config.shard_optimizer and self.accelerator.num_processes > 1

    def _parameters(self) -> list[torch.nn.Parameter]:
        """The trainable parameters of the task's modules, in one list."""
        return [p for module in self.task.modules.values() for p in module.parameters() if p.requires_grad]

    def _optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """AdamW; with ``shard_optimizer`` over several processes, each process keeps and updates only its share
        of the parameters' moments and broadcasts the updated parameters (ZeRO stage 1). The update is the same
        arithmetic on the same averaged gradients, so the weights are those of the unsharded run."""
        if not self.sharded_optimizer:
            return torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer(
            params, optimizer_class=torch.optim.AdamW, lr=self.config.lr, weight_decay=self.config.weight_decay
        )

    def _prepare_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """One process: accelerate's prepare (device, and torch.compile with --compile). Several: the module
        on this process's device, unwrapped, and gradients averaged by :meth:`_average_gradients` after each
        step's backward passes. Why not DDP: the stages call ``encode``/``decode`` and run the discriminator
        twice per step, which DDP's forward-hook contract does not allow; one all-reduce per step is what DDP
        computes."""
        if self.accelerator.num_processes == 1:
            return self.accelerator.prepare(module)
        module = module.to(self.accelerator.device)
        if self.config.compile != "no":
            module.compile(backend=self.config.compile)
        return module

    def _average_gradients(self, params) -> None:
        """Replace every gradient by its mean over the processes (one flat all-reduce)."""
        with_grad = [p for p in params if p.grad is not None]
        if self.accelerator.num_processes == 1 or not with_grad:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
        flat = self.accelerator.reduce(flat, reduction="mean")
        offset = 0
        for p in with_grad:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def _check_in_step(self) -> None:
        """Every process must hold the same weights (the main one alone is saved): compare a checksum."""
        if self.accelerator.num_processes == 1:
            return
        modules = [self.accelerator.unwrap_model(m) for m in self.task.modules.values()]
        checksum = torch.stack([sum(p.detach().double().sum() for p in m.parameters()) for m in modules])
        every = self.accelerator.gather(checksum[None].to(self.accelerator.device)).cpu()
        if not torch.equal(every.min(0).values, every.max(0).values):
            raise RuntimeError(f"the training processes hold different weights (checksums {every.tolist()})")

    def _agree(self, finite: bool, stop: bool) -> tuple[bool, bool]:
        """(all processes finite, any process asked to stop)."""
        flags = torch.tensor([float(not finite), float(stop)], device=self.accelerator.device)
        flags = self.accelerator.reduce(flags, reduction="sum")
        return bool(flags[0] == 0), bool(flags[1] > 0)

    def _with_ema(self, emas: dict[str, EMAModel], action) -> None:
        """Run ``action`` with the EMA weights swapped in (sampling and export use them)."""
        modules = {name: self.accelerator.unwrap_model(m) for name, m in self.task.modules.items()}
        for name, ema in emas.items():
            ema.store(modules[name].parameters())
            ema.copy_to(modules[name].parameters())
        try:
            with torch.random.fork_rng(devices=[]):
                for module in modules.values():
                    module.eval()
                action()
        finally:
            for name, ema in emas.items():
                ema.restore(modules[name].parameters())
                modules[name].train()

    def _validate(self, step: int, emas: dict[str, EMAModel]) -> None:
        dataset = self.task.val_dataset()
        if dataset is None:
            return
        plan = BatchPlan(
            len(dataset),
            self.config.batch_size,
            seed=0,
            start=0,
            stop=min(4, max(1, len(dataset) // self.config.batch_size)),
        )
        losses = []

        def evaluate() -> None:
            with torch.no_grad():
                for k, batch in enumerate(DataLoader(dataset, batch_sampler=plan, collate_fn=collate_skipping)):
                    if batch is not None:
                        losses.append(
                            float(
                                self.task.loss(
                                    batch, step=-1, generator=step_generator(0, k, self.accelerator.device)
                                )[0]
                            )
                        )

        self._with_ema(emas, evaluate)
        if losses:
            self._metrics({"step": step, "val_loss": float(np.mean(losses))})

    def _metrics(self, record: dict[str, Any]) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _progress(self, step: int, **fields: Any) -> None:
        """``progress.json``: what the app's Train tab shows (written atomically)."""
        if not self.accelerator.is_main_process:
            return
        grids = sorted((self.run_dir / "samples").glob("*.png")) if (self.run_dir / "samples").is_dir() else []
        state = {
            "stage": self.config.stage,
            "step": step,
            "max_steps": self.config.max_steps,
            "pid": os.getpid(),
            "latest_samples": str(grids[-1]) if grids else None,
            "updated": time.time(),
            **fields,
        }
        finite = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in state.items()}
        write_atomic(self.run_dir / "progress.json", json.dumps(finite).encode())

    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM: finish the current step, save a checkpoint, exit cleanly."""

        def request_stop(signum, _frame) -> None:
            log.warning("signal %d: saving a checkpoint after this step", signum)
            self.stop_requested = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, request_stop)
            except ValueError:  # not the main thread (e.g. called from a test runner thread)
                pass


def make_accelerator(config: TrainConfig) -> Accelerator:
    """The run's accelerator, at :func:`mixed_precision`."""
    return Accelerator(
        mixed_precision=mixed_precision(config),
        gradient_accumulation_steps=1,
        cpu=not torch.cuda.is_available(),
        dynamo_backend=config.compile,
    )


def mixed_precision(config: TrainConfig) -> str:
    """``auto``: bf16 on GPUs, fp32 on CPUs (reproducible, and the precision every bundled figure was made in;
    ``--mixed-precision bf16`` is opt-in there, 1.6-1.7x faster on CPUs with AVX512-BF16). bf16 asked for on a
    CPU without native bf16 trains in fp32 with a warning: emulated bf16 was 38x slower on an AVX2-only CPU."""
    from cxr_studio.environment import cpu_has_native_bf16

    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if precision == "bf16" and not torch.cuda.is_available() and not cpu_has_native_bf16():
        log.warning(
            "--mixed-precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX flag), where bf16 autocast "
            "is many times slower than float32; training in float32 instead"
        )
        precision = "no"
    return precision


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def run(config: TrainConfig, build: Callable[[TrainConfig], Task]) -> Path:
    """Train ``build(config)``'s task to completion (or until stopped); returns its run folder. Each entry point
    passes its own builder (the cascade's stages, fine-tuning), so this loop knows none of them."""
    accelerator = make_accelerator(config)  # first: it decides whether this process is one of several
    return Trainer(config, build(config), accelerator=accelerator).run()
