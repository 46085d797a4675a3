"""Synthesize a whole dataset: ``python -m cxr_studio.synthesize --model DIR --reports FILE --per-report K --out DIR``.

``--reports`` is a manifest (each row's report, labels, split and view are kept) or a text file with one
report per line. The output folder holds ``images/RRRRRR-KKKK.png`` (16-bit, parameters inside, labelled
synthetic; row ``R`` of the reports, copy ``K``), ``manifest.csv`` in the project's one format
(``dataset`` = synthetic, the source row's labels and split, the seed), ``summary.json`` (what was made,
replaced and dropped, and why) and ``synthesis.json`` (the settings, so a rerun can only finish the same set).

Guarantees, and how:
- Deterministic: work is cut into fixed batches of ``batch_size`` consecutive (row, copy) items; the image of
  (row, copy) depends only on the model, the settings and (row, copy), whatever the number of processes or
  the order in which batches run. Seeds: ``seed + i`` for item ``i = row * K + copy``, and ``n`` further on
  for each replacement (``n`` = number of items), so no two images of a set share a seed.
- Resumable: every image is written atomically (temporary file, then rename); an item is done when its PNG
  (or its record of being dropped) exists, and a finished file is never rewritten. SIGKILL at any moment,
  run the same command, and the set is completed, identical to an uninterrupted run. SIGTERM stops after
  the current batch. The manifest and summary are rebuilt from the files at the end, so no image is listed
  twice.
- Sharded: under ``accelerate launch --num_processes N -m cxr_studio.synthesize ...`` process ``p`` makes
  batches ``p, p + N, ...`` on its own device; the main process writes the manifest once all are done.
- Filters (optional, counted in the summary): the privacy screen (Packhäuser et al.'s privacy-enhancing
  sampling: an image that resembles a training image is replaced by the next seed) and a quality filter (an
  image whose judge verdicts contradict its own labels is replaced, as RoentGen-v2 drops such samples).
  After ``max_attempts`` seeds an item is dropped and recorded, never silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxr_studio import imaging
from cxr_studio.data.manifest import read_manifest, write_manifest
from cxr_studio.errors import InputError
from cxr_studio.files import remove_partials, sha256_file, write_atomic
from cxr_studio.labels import CHEXPERT_LABELS
from cxr_studio.limits import LIMITS, check_seed

IMAGES, DROPPED = "images", "dropped"
SETTINGS_FILE, MANIFEST_FILE, SUMMARY_FILE, PROGRESS_FILE = (
    "synthesis.json",
    "manifest.csv",
    "summary.json",
    "progress.json",
)
EXTRA_COLUMNS = ("seed", "source_row", "source_patient_id", "model", "boxes")  # boxes: the layout drawn
LAYOUT_SOURCES = ("auto", "none", "manifest")  # the rule's layout, none, or the source's boxes (else the rule's)
SIDED_COLUMNS = ("findings", "devices")  # kept when the source has them (the judge's side targets read them)
MAX_BATCH = 64


@dataclass(frozen=True)
class SynthesisSettings:
    """Everything that decides a synthetic set (saved as ``synthesis.json``). ``None`` = the model's default."""

    per_report: int = 1
    seed: int = 0
    batch_size: int = 4
    num_steps: int | None = None
    guidance_scale: float | None = None
    sampler: str | None = None
    upscale: bool | None = None
    sr_num_steps: int | None = None
    sr_sampler: str | None = None
    max_attempts: int = 4  # seeds tried per item before it is dropped (filters only)
    layout: str = "auto"  # LAYOUT_SOURCES: where each finding goes (a model without layout channels draws none)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUT_SOURCES:
            raise InputError(f"layout {self.layout!r}; accepted: {', '.join(LAYOUT_SOURCES)}.")
        for name, low, high in (("per_report", 1, 100_000), ("batch_size", 1, MAX_BATCH), ("max_attempts", 1, 100)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InputError(f"{name} {value!r}; a whole number from {low} to {high} is accepted.")
        check_seed(self.seed)

    def generation_options(self) -> dict[str, Any]:
        """The keyword options of :meth:`CXRStudio.generate_batch`."""
        names = ("num_steps", "guidance_scale", "sampler", "upscale", "sr_num_steps", "sr_sampler")
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class Filters:
    """Optional sample filters: ``privacy`` a :class:`~cxr_studio.evaluation.privacy.PrivacyScreen` (calibrated
    over the model's training set), ``judge`` a :class:`~cxr_studio.models.classifier.FindingClassifier` with
    thresholds. Each is described in ``synthesis.json`` by ``privacy_source`` / ``judge_source``."""

    privacy: Any | None = None
    judge: Any | None = None
    privacy_source: str = ""
    judge_source: str = ""


# ----------------------------------------------------------------------------------------------------
# Sources: the reports to synthesize from
# ----------------------------------------------------------------------------------------------------


def read_sources(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """A manifest (``.csv``: rows kept whole) or a text file (one report per line; blank lines skipped) ->
    rows with at least ``report``, ``split`` and ``view``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"reports file {path} does not exist; a manifest (.csv) or a text file of reports is accepted."
        )
    if path.suffix.lower() == ".csv":
        return read_manifest(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise InputError(f"{path.name} is not UTF-8 text; a text file with one report per line is accepted.") from err
    rows = [{"report": line.strip(), "split": "train", "view": "PA"} for line in lines if line.strip()]
    if not rows:
        raise InputError(f"{path.name} holds no report; one report per line is accepted.")
    return rows


def item_seed(settings: SynthesisSettings, item: int, attempt: int, num_items: int) -> int:
    """The seed of ``item`` at replacement ``attempt`` (0 = first try)."""
    seed = settings.seed + item + attempt * num_items
    if seed > LIMITS.max_seed:
        raise InputError(
            f"seed {settings.seed} with {num_items} items x {settings.max_attempts} tries passes {LIMITS.max_seed}."
        )
    return seed


def item_name(row: int, copy: int) -> str:
    return f"{row:06d}-{copy:04d}"


# ----------------------------------------------------------------------------------------------------
# The synthesis
# ----------------------------------------------------------------------------------------------------


def synthesize(
    studio: Any,
    sources: Sequence[dict[str, str]],
    out: str | os.PathLike[str],
    *,
    settings: SynthesisSettings,
    filters: Filters = Filters(),
    sources_hash: str = "",
    process_index: int = 0,
    num_processes: int = 1,
    barrier: Callable[[], None] = lambda: None,
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any] | None:
    """Make (or finish) the set in ``out``; returns the summary on the main process (``None`` on the others
    and when stopped). ``process_index`` / ``num_processes`` / ``barrier`` shard the work (accelerate's state)."""
    from tqdm.auto import tqdm

    out = Path(out)
    main = process_index == 0
    num_items = len(sources) * settings.per_report
    item_seed(settings, num_items - 1, settings.max_attempts - 1, num_items)  # every seed exists
    record = _settings_record(studio, settings, filters, sources_hash, num_items)
    # 1. The first run fixes the settings (every process writes the same record); other settings would mix two sets
    _claim(out, record)
    barrier()
    _check_claim(out, record)
    if main:  # a killed run's half-written files, while no process writes (the barrier after)
        remove_partials(out)
    barrier()
    # 2. This process's batches, skipping finished items
    batches = [range(b, min(b + settings.batch_size, num_items)) for b in range(0, num_items, settings.batch_size)]
    mine = [batch for index, batch in enumerate(batches) if index % num_processes == process_index]
    todo = [batch for batch in mine if not all(_done(out, *divmod(i, settings.per_report)) for i in batch)]
    total = sum(len(b) for b in mine)
    bar = tqdm(
        total=total, initial=total - sum(len(b) for b in todo), unit="img", disable=not progress, desc="synthesize"
    )
    start, made, latest = time.perf_counter(), 0, []
    for batch in todo:
        if should_stop():
            bar.close()
            if main:
                _write_progress(out, num_items, start, made, latest, status="stopped")
            return None
        latest = _make_batch(studio, sources, out, batch, settings=settings, filters=filters, num_items=num_items)
        made += len(batch)
        bar.update(len(batch))
        if main:
            _write_progress(out, num_items, start, made, latest, status="running")
    bar.close()
    # 3. Once every process is done, the main process lists the set
    barrier()
    if not main:
        return None
    summary = write_outputs(out, sources, settings=settings, record=record)
    _write_progress(out, num_items, start, made, latest, status="done")
    return summary


def _make_batch(
    studio: Any,
    sources: Sequence[dict[str, str]],
    out: Path,
    batch: range,
    *,
    settings: SynthesisSettings,
    filters: Filters,
    num_items: int,
) -> list[str]:
    """Generate one batch; replace filtered images with the next seed until kept or out of attempts. Returns the
    names of the images written."""
    # A batch is regenerated whole, finished items included, and its retries are the same subsets as in an
    # uninterrupted run: the arithmetic of every image, and so every byte, never depends on a kill.
    pending, written = list(batch), []
    history: dict[int, list[dict[str, Any]]] = {i: [] for i in batch}
    for attempt in range(settings.max_attempts):
        if not pending:
            return written
        seeds = [item_seed(settings, i, attempt, num_items) for i in pending]
        rows = [sources[i // settings.per_report] for i in pending]
        result = studio.generate_batch(
            [row["report"] for row in rows],
            seeds=seeds,
            layouts=[_layout_of(row, settings.layout) for row in rows],
            **settings.generation_options(),
        )
        reasons = _filter_reasons(result.pixels, rows, filters)
        still = []
        for j, item in enumerate(pending):
            row_index, copy = divmod(item, settings.per_report)
            if reasons[j]:
                history[item].append({"seed": seeds[j], "reasons": reasons[j]})
                still.append(item)
                continue
            if _done(out, row_index, copy):  # written before a kill: never rewritten
                continue
            parameters = {k: v for k, v in result.parameters_for(j).items() if k != "seconds"}  # bytes reproducible
            parameters |= {"source_row": row_index, "copy": copy, "replaced": history[item]}
            name = f"{item_name(row_index, copy)}.png"
            imaging.save_png(
                out / IMAGES / name, result.pixels[j], bit_depth=16, parameters=parameters, synthetic=True
            )
            written.append(name)
        pending = still
    for item in pending:
        row_index, copy = divmod(item, settings.per_report)
        if _done(out, row_index, copy):
            continue
        write_atomic(
            out / DROPPED / f"{item_name(row_index, copy)}.json",
            json.dumps({"source_row": row_index, "copy": copy, "tries": history[item]}, sort_keys=True).encode(),
        )
    return written


def _filter_reasons(pixels01: np.ndarray, rows: Sequence[dict[str, str]], filters: Filters) -> list[list[str]]:
    """Per image, why it is rejected (empty = kept): ``privacy`` and ``quality: <target>`` entries."""
    reasons: list[list[str]] = [[] for _ in rows]
    if filters.privacy is not None:
        from cxr_studio.evaluation.privacy import screen_pixels

        for j, match in enumerate(screen_pixels(filters.privacy, pixels01)):
            if match.flagged:
                reasons[j].append(f"privacy: resembles training image {match.nearest} (score {match.score:.3f})")
    if filters.judge is not None:
        for j, targets in enumerate(contradictions(filters.judge, pixels01, rows)):
            reasons[j] += [f"quality: {target}" for target in targets]
    return reasons


def contradictions(judge: Any, pixels01: np.ndarray, rows: Sequence[dict[str, str]]) -> list[list[str]]:
    """Per image ``(N, H, W)`` in ``[0, 1]``, the judge's targets whose verdict (at its thresholds fixed on real
    images) contradicts the row's known label: positive where the label says absent, or the reverse."""
    from cxr_studio.evaluation.classifier import predict
    from cxr_studio.labels import TARGETS, targets_for

    probabilities = predict(judge, imaging.to_batch(pixels01, judge.config.image_size))
    out = []
    for p, row in zip(probabilities, rows):
        targets, known = targets_for(row)
        out.append(
            [
                name
                for j, name in enumerate(TARGETS)
                if known[j] and (p[j] > judge.thresholds.get(name, 0.5)) != (targets[j] > 0.5)
            ]
        )
    return out


def _done(out: Path, row: int, copy: int) -> bool:
    name = item_name(row, copy)
    return (out / IMAGES / f"{name}.png").is_file() or (out / DROPPED / f"{name}.json").is_file()


def _settings_record(
    studio: Any, settings: SynthesisSettings, filters: Filters, sources_hash: str, num_items: int
) -> dict[str, Any]:
    return {
        "model": studio.model_id,
        "sources_sha256": sources_hash,
        "items": num_items,
        "privacy_filter": filters.privacy_source if filters.privacy is not None else None,
        "quality_filter": filters.judge_source if filters.judge is not None else None,
        **dataclasses.asdict(settings),
    }


def _claim(out: Path, record: dict[str, Any]) -> None:
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    (out / DROPPED).mkdir(exist_ok=True)
    if not (out / SETTINGS_FILE).is_file():
        write_atomic(out / SETTINGS_FILE, json.dumps(record, indent=2, sort_keys=True).encode())


def _check_claim(out: Path, record: dict[str, Any]) -> None:
    saved = json.loads((out / SETTINGS_FILE).read_text())
    changed = {key: (saved.get(key), value) for key, value in record.items() if saved.get(key) != value}
    if changed:
        listed = "; ".join(f"{key}: {old!r} there, {new!r} now" for key, (old, new) in sorted(changed.items()))
        raise InputError(
            f"{out} holds a set made with other settings ({listed}); finish it with the same settings or choose "
            "another --out."
        )


def _write_progress(out: Path, num_items: int, start: float, made: int, latest: list[str], *, status: str) -> None:
    """``progress.json`` for the app's Synthesize tab: done counts every process's files."""
    done = sum(1 for _ in os.scandir(out / IMAGES)) + sum(1 for _ in os.scandir(out / DROPPED))
    elapsed = time.perf_counter() - start
    rate = made / elapsed if elapsed > 0 and made else None
    record = {
        "status": status,
        "done": min(done, num_items),
        "total": num_items,
        "images_per_s": rate,
        "eta_s": (num_items - done) / rate if rate else None,
        "latest": [f"{IMAGES}/{name}" for name in latest],
        "updated": time.time(),
    }
    write_atomic(out / PROGRESS_FILE, json.dumps(record).encode())


def write_outputs(
    out: str | os.PathLike[str],
    sources: Sequence[dict[str, str]],
    *,
    settings: SynthesisSettings,
    record: dict[str, Any],
) -> dict[str, Any]:
    """Rebuild ``manifest.csv`` and ``summary.json`` from the files (rows in (row, copy) order)."""
    out = Path(out)
    rows, replaced, dropped = [], Counter(), Counter()
    for row_index, source in enumerate(sources):
        for copy in range(settings.per_report):
            name = item_name(row_index, copy)
            png = out / IMAGES / f"{name}.png"
            if not png.is_file():
                tries = json.loads((out / DROPPED / f"{name}.json").read_text())["tries"]
                dropped.update(_reason_kinds(tries[-1]["reasons"]))
                continue
            parameters = imaging.read_png_parameters(png)
            for replacement in parameters.get("replaced", []):
                replaced.update(_reason_kinds(replacement["reasons"]))
            rows.append(_manifest_row(source, row_index, copy, parameters))
    sided = tuple(column for column in SIDED_COLUMNS if sources and column in sources[0])
    write_manifest(out / MANIFEST_FILE, rows, extra=EXTRA_COLUMNS + sided)
    summary = {
        "items": len(sources) * settings.per_report,
        "images": len(rows),
        "dropped": sum(1 for _ in (out / DROPPED).glob("*.json")),
        "replacements_by_reason": dict(sorted(replaced.items())),
        "drops_by_last_reason": dict(sorted(dropped.items())),
        "settings": record,
    }
    write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True).encode())
    return summary


def _reason_kinds(reasons: Sequence[str]) -> set[str]:
    """``privacy`` or ``quality: <target>`` (the privacy entries' scores are left out of the counts)."""
    return {reason.split(":")[0] if reason.startswith("privacy") else reason for reason in reasons}


def _layout_of(row: dict[str, str], source: str) -> str | None:
    """A source row's ``layout`` argument under ``source`` (:data:`LAYOUT_SOURCES`): ``manifest`` takes the row's
    ``boxes`` (normalised to its image, used as they are on the square output) where it has them."""
    if source == "manifest" and row.get("boxes", "").strip():
        return row["boxes"]
    return "none" if source == "none" else "auto"


def _manifest_row(source: dict[str, str], row_index: int, copy: int, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": f"{IMAGES}/{item_name(row_index, copy)}.png",
        "dataset": "synthetic",
        "patient_id": f"synthetic-{row_index:06d}",  # one made-up patient per report
        "study_id": f"synthetic-{item_name(row_index, copy)}",
        "view": source.get("view") or "PA",
        "split": source.get("split") or "train",
        "report": source["report"],  # verbatim (the PNG records the cleaned text the model read)
        **{label: source.get(label, "") for label in CHEXPERT_LABELS},
        "seed": parameters["seed"],
        "source_row": row_index,
        "source_patient_id": source.get("patient_id", ""),
        "model": parameters["model"],
        "boxes": "" if parameters.get("layout") is None else json.dumps(parameters["layout"]),
        **{column: source[column] for column in SIDED_COLUMNS if column in source},
    }


# ----------------------------------------------------------------------------------------------------
# As a background job (the app's Synthesize tab): the same command in its own process
# ----------------------------------------------------------------------------------------------------


def start_job(
    *,
    model: str | os.PathLike[str],
    reports: str | os.PathLike[str],
    out: str | os.PathLike[str],
    per_report: int = 1,
    seed: int = 0,
    batch_size: int = 4,
    num_steps: int | None = None,
    privacy_against: str | os.PathLike[str] | None = None,
    judge: str | os.PathLike[str] | None = None,
    dicom_study: str | os.PathLike[str] | None = None,
) -> int:
    """Start (or finish) a set with ``python -m cxr_studio.synthesize`` in the background; returns its pid.
    The job's console and launcher record live in ``out``; :func:`read_job` reports on it, and
    :func:`cxr_studio.jobs.stop` on ``out`` stops it after the current batch."""
    from cxr_studio import jobs
    from cxr_studio.model_folders import is_model_folder

    if not is_model_folder(model):
        raise InputError(f"{model} is not a model folder (model_index.json expected); the bundled one is assets/demo.")
    read_sources(reports)  # bad reports are reported now, not in the job's log
    SynthesisSettings(per_report=per_report, seed=seed, batch_size=batch_size)
    args = ["--model", model, "--reports", reports, "--out", out, "--per-report", per_report, "--seed", seed]
    args += ["--batch-size", batch_size] + (["--num-steps", num_steps] if num_steps else [])
    for flag, value in (("--privacy-against", privacy_against), ("--judge", judge), ("--dicom-study", dicom_study)):
        args += [flag, value] if value else []
    return jobs.start("cxr_studio.synthesize", args, out)


def read_job(out: str | os.PathLike[str], *, log_lines: int = 12) -> dict[str, Any]:
    """The set's progress (``progress.json``), whether its job runs, its summary once done and the console tail."""
    from cxr_studio import jobs

    out = Path(out)
    progress: dict[str, Any] = {}
    try:
        progress = json.loads((out / PROGRESS_FILE).read_text())
    except (OSError, json.JSONDecodeError):  # not started, or being replaced right now: read it next time
        pass
    summary = json.loads((out / SUMMARY_FILE).read_text()) if (out / SUMMARY_FILE).is_file() else None
    return {
        "running": jobs.is_running(out),
        "status": progress.get("status", "not started"),
        "done": progress.get("done", 0),
        "total": progress.get("total", 0),
        "images_per_s": progress.get("images_per_s"),
        "eta_s": progress.get("eta_s"),
        "latest": [str(out / name) for name in progress.get("latest", [])],
        "summary": summary and {k: v for k, v in summary.items() if k != "settings"},
        "log": jobs.console_tail(out, lines=log_lines),
    }


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxr_studio.synthesize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="model folder (a cascade saved by the studio)")
    parser.add_argument(
        "--reports", required=True, type=Path, help="a manifest (.csv) or a text file, one report per line"
    )
    parser.add_argument("--per-report", type=int, default=1, help="images per report (default 1)")
    parser.add_argument("--out", required=True, type=Path, help="output folder; rerun the same command to finish it")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the first image; item i uses seed + i (default 0)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help=f"images per batch, 1 to {MAX_BATCH} (part of the settings)"
    )
    parser.add_argument("--num-steps", type=int, help="latent denoising steps (default: the model's)")
    parser.add_argument("--sampler", help="latent sampler (default: the model's)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    parser.add_argument("--no-upscale", action="store_true", help="skip super-resolution (first-stage size)")
    parser.add_argument("--sr-num-steps", type=int, help="super-resolution steps (default: the model's)")
    parser.add_argument(
        "--privacy-against", type=Path, help="training manifest: replace images that resemble its images"
    )
    parser.add_argument(
        "--judge", type=Path, help="classifier folder: replace images whose verdicts contradict their labels"
    )
    parser.add_argument(
        "--max-attempts", type=int, default=4, help="seeds tried per image before it is dropped (default 4)"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUT_SOURCES,
        default="auto",
        help="where each finding goes: auto (the rule's layout from each report), none (the report alone) or "
        "manifest (each row's boxes column where it has one, else the rule's); a model without layout channels "
        "draws none (default auto)",
    )
    parser.add_argument("--dicom-study", type=Path, help="also write the set as one DICOM study (a folder or a .zip)")
    parser.add_argument("--device", help="cpu or cuda (default: accelerate's device for this process)")
    args = parser.parse_args(argv)
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))  # finish the batch, then exit
    try:
        summary = _run(args, should_stop=lambda: stop["requested"])
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if stop["requested"]:
        print("stopped; run the same command to finish the set", file=sys.stderr)
        return 0
    if summary is not None:
        print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=2))
    return 0


def _run(args: argparse.Namespace, *, should_stop: Callable[[], bool]) -> dict[str, Any] | None:
    import torch
    from accelerate import PartialState

    from cxr_studio.model_folders import load_model

    # cpu=True is what makes accelerate join CPU processes (gloo) when no GPU is there
    state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
    settings = SynthesisSettings(
        per_report=args.per_report,
        seed=args.seed,
        batch_size=args.batch_size,
        num_steps=args.num_steps,
        guidance_scale=args.guidance,
        sampler=args.sampler,
        upscale=False if args.no_upscale else None,
        sr_num_steps=args.sr_num_steps,
        max_attempts=args.max_attempts,
        layout=args.layout,
    )
    sources = read_sources(args.reports)
    studio = load_model(args.model, device=args.device or state.device)
    filters = _filters(args, sources)
    summary = synthesize(
        studio,
        sources,
        args.out,
        settings=settings,
        filters=filters,
        sources_hash=sha256_file(args.reports),
        process_index=state.process_index,
        num_processes=state.num_processes,
        barrier=state.wait_for_everyone,
        progress=state.is_main_process,
        should_stop=should_stop,
    )
    if summary is not None and args.dicom_study is not None:
        from cxr_studio.dicom.export import study_from_pngs

        pngs = [args.out / row_path for row_path in _manifest_paths(args.out)]
        summary["dicom_study"] = str(study_from_pngs(pngs, args.dicom_study))
    return summary


def _manifest_paths(out: Path) -> list[str]:
    return [row["path"] for row in read_manifest(out / MANIFEST_FILE)]


def _filters(args: argparse.Namespace, sources: Sequence[dict[str, str]]) -> Filters:
    privacy = judge = None
    if args.privacy_against is not None:
        from cxr_studio.evaluation.privacy import screen_for_manifest

        privacy, _ = screen_for_manifest(str(args.privacy_against))
    if args.judge is not None:
        from cxr_studio.models.classifier import FindingClassifier

        if not any(label in sources[0] for label in CHEXPERT_LABELS):
            raise InputError("--judge compares images with their labels: give --reports as a manifest with labels.")
        judge = FindingClassifier.load(args.judge)
    return Filters(
        privacy=privacy,
        judge=judge,
        # by content, not by path: the same files under another spelling are the same filter
        privacy_source=f"training manifest sha256 {sha256_file(args.privacy_against)[:12]}"
        if privacy is not None
        else "",
        judge_source=f"judge sha256 {sha256_file(args.judge / 'model.safetensors')[:12]}" if judge is not None else "",
    )


if __name__ == "__main__":
    raise SystemExit(main())
