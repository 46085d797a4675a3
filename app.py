"""CXR Studio front-end. All computation lives in ``cxr_studio``; this file only builds and wires widgets.

Run ``python app.py`` and open the printed local URL. The generation, editing, review and training tabs
arrive with their issues; today the page browses the embedded phantom dataset.
"""

from __future__ import annotations

import argparse
import os
import sys

# Offline and private by design: set before gradio is imported so nothing phones home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402

from cxr_studio import InputError, __version__  # noqa: E402
from cxr_studio.data import phantom  # noqa: E402
from cxr_studio.imaging import to_pil  # noqa: E402

MAX_UPLOAD = "200mb"  # a 16-bit 4k x 4k DICOM is ~32 MB; multi-frame files are refused anyway
SYNTHETIC_LABEL = "SYNTHETIC phantom - not a patient image"


def phantom_case(
    finding_names: list[str], side: str, severity: str, zone: str, device_names: list[str], seed: float
) -> tuple["PIL.Image.Image", "PIL.Image.Image", str]:  # noqa: F821
    """Widget values -> (image, device-free image, report) of one phantom patient."""
    try:
        findings = [
            phantom.Finding(name, side if name in phantom.SIDED else None, severity, zone if name in phantom.ZONED else None)
            for name in finding_names
        ]
        devices = [phantom.Device(name, side if name in {"pacemaker", "icd", "chest_tube", "central_line"} else None) for name in device_names]
        case = phantom.render_case(int(seed), size=512, findings=findings, devices=devices)
    except InputError as err:
        raise gr.Error(str(err)) from err
    return to_pil(case.image), to_pil(case.clean), case.report


def build_demo() -> gr.Blocks:
    """The page; handlers receive named widget values and return widget values."""
    with gr.Blocks(title="CXR Studio", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# CXR Studio {__version__}\nEvery image on this page is **synthetic** and labelled as such.")
        with gr.Tab("Phantom"):
            with gr.Row():
                with gr.Column():
                    findings = gr.CheckboxGroup(list(phantom.FINDINGS), label="Findings")
                    side = gr.Radio(list(phantom.SIDES), value="right", label="Side (patient's)")
                    severity = gr.Radio(list(phantom.SEVERITIES), value="moderate", label="Severity")
                    zone = gr.Radio(list(phantom.ZONES), value="lower", label="Zone")
                    devices = gr.CheckboxGroup(list(phantom.DEVICES), label="Support devices")
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                    button = gr.Button("Render phantom", variant="primary")
                with gr.Column():
                    image = gr.Image(label=SYNTHETIC_LABEL, format="png", type="pil", interactive=False)
                    clean = gr.Image(label="Same patient without devices (SYNTHETIC)", format="png", type="pil", interactive=False)
                    report = gr.Textbox(label="Report", lines=6)
            button.click(phantom_case, inputs=[findings, side, severity, zone, devices, seed], outputs=[image, clean, report])
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CXR Studio: local chest radiograph studio")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", help="USER:PASS required to open the page")
    args = parser.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    if args.auth and len(auth) != 2:
        print("error: --auth must be USER:PASS", file=sys.stderr)
        return 2
    print(f"CXR Studio {__version__}: model = embedded phantom (no diffusion model bundled yet)")
    build_demo().queue(max_size=16, default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        auth=auth,
        max_file_size=MAX_UPLOAD,
        run_history=False,
        enable_monitoring=False,
        strict_cors=True,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        footer_links=[],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
