"""Load: simultaneous ``gradio_client`` users generating and inpainting against one app.

``python tests/load_app.py [--users 8] [--rounds 2] [--fast] [--model DIR]`` (default: the bundled demo cascade)
prints requests, failures, "busy" answers, p50/p95 latency (all calls, and Generate's alone) and the server's
peak memory as JSON. Each user, per round, uploads a 16-bit radiograph, generates one image (``--fast``: with the
Generate tab's "Preview (fast)") and inpaints one stroke.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate_inputs(
    report: str,
    *,
    sampler: str,
    steps: int,
    guidance: float,
    seed: int,
    count: int = 1,
    upscale: bool = False,
    fast: bool = False,
    side_contrast: bool = False,
    layout_mode: str = "auto",
    layout_boxes: dict | None = None,
) -> tuple:
    """The app's ``/generate`` API inputs in its order (the Generate form's, its layout panel's, its advanced
    options', then the privacy filter's, off)."""
    form = (report, "", sampler, steps, guidance, seed, False, count, upscale, fast)
    return (*form, layout_mode, layout_boxes, side_contrast, False, "")


def write_inputs(folder: Path) -> tuple[str, str]:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 65536, (192, 160), dtype=np.uint16)
    layer = np.zeros((192, 160, 4), np.uint8)
    layer[80:110, 60:100] = (0, 255, 102, 127)
    Image.fromarray(pixels).save(folder / "upload.png")
    Image.fromarray(layer, "RGBA").save(folder / "stroke.png")
    return str(folder / "upload.png"), str(folder / "stroke.png")


def user(
    url: str, upload: str, stroke: str, rounds: int, steps: int, records: list, lock: threading.Lock, fast: bool
) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    editor = {"background": None, "layers": [handle_file(stroke)], "composite": None, "id": None}
    calls = {
        "upload": lambda: client.predict(handle_file(upload), 0.5, 1.0, False, api_name="/inpaint_upload"),
        "generate": lambda: client.predict(
            *generate_inputs(
                "Small left pleural effusion.", sampler="ddim", steps=steps, guidance=4.0, seed=1, fast=fast
            ),
            api_name="/generate",
        ),
        "inpaint": lambda: client.predict(
            editor, "", "remove device", 0.4, "classical", 6, 8, steps, 0, 0, api_name="/inpaint"
        ),
    }
    upload_busy = False
    for _ in range(rounds):  # each round: upload (a new 16-bit radiograph in the session), generate, inpaint
        for name, call in calls.items():
            start = time.perf_counter()
            try:
                call()
                outcome = "ok"
            except Exception as err:  # noqa: BLE001 - the client raises for a full queue and for app errors alike
                outcome = "busy" if "queue is full" in str(err).lower() else f"error: {err}"
                if name == "inpaint" and upload_busy and "upload a radiograph first" in str(err):
                    outcome = "skipped"  # the clear answer when this round's upload was turned away as busy
            if name == "upload":
                upload_busy = outcome == "busy"
            with lock:
                records.append({"call": name, "seconds": time.perf_counter() - start, "outcome": outcome})


def run_load(studio, *, users: int, rounds: int, steps: int, fast: bool = False) -> dict:
    import app

    demo = app.build_demo(app.AppModel(studio)).queue(**app.QUEUE)
    _, url, _ = demo.launch(
        prevent_thread_lock=True, **{**app.launch_settings("127.0.0.1", None, None), "server_port": None}
    )
    records: list[dict] = []
    lock = threading.Lock()
    try:
        with tempfile.TemporaryDirectory() as folder:
            upload, stroke = write_inputs(Path(folder))
            start = time.perf_counter()
            threads = [
                threading.Thread(target=user, args=(url, upload, stroke, rounds, steps, records, lock, fast))
                for _ in range(users)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            # the queue is healthy afterwards: one more request goes through
            records_after: list[dict] = []
            user(url, upload, stroke, 1, steps, records_after, lock, fast)
    finally:
        demo.close()
    ok = [r["seconds"] for r in records if r["outcome"] == "ok"]
    generated = [r["seconds"] for r in records if r["outcome"] == "ok" and r["call"] == "generate"]
    return {
        "users": users,
        "requests": len(records),
        "ok": len(ok),
        "busy": sum(r["outcome"] == "busy" for r in records),
        "skipped_after_busy_upload": sum(r["outcome"] == "skipped" for r in records),
        "failures": [r for r in records if r["outcome"].startswith("error")],
        "p50_s": float(np.percentile(ok, 50)) if ok else None,
        "p95_s": float(np.percentile(ok, 95)) if ok else None,
        "fast": fast,
        "generate_p50_s": float(np.percentile(generated, 50)) if generated else None,
        "generate_p95_s": float(np.percentile(generated, 95)) if generated else None,
        "wall_s": wall,
        "healthy_after": all(r["outcome"] == "ok" for r in records_after),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/load_app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--fast", action="store_true", help="generate with the Generate tab's Preview (fast)")
    parser.add_argument("--model", help="model folder (default: the bundled demo cascade)")
    args = parser.parse_args(argv)
    import cxr_studio

    studio = cxr_studio.load_model(args.model or None)
    result = run_load(studio, users=args.users, rounds=args.rounds, steps=args.steps, fast=args.fast)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
