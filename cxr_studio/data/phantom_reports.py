"""The phantom's reports: FINDINGS and IMPRESSION sections in varied radiology wording, with explicit negations,
for what :mod:`cxr_studio.data.phantom` drew (each finding's and device's patient side included)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class _Finding(Protocol):  # phantom.Finding, named here without importing the renderer
    name: str
    side: str | None
    severity: str
    zone: str | None


class _Device(Protocol):  # phantom.Device
    name: str
    side: str | None


_DEVICE_TEXT = {
    "pacemaker": [
        "{Side} chest wall pacemaker with leads in the right atrium and right ventricle.",
        "Dual-chamber pacemaker, {side} chest wall generator, leads in expected position.",
    ],
    "icd": [
        "{Side} chest wall ICD with a shock coil in the right ventricle.",
        "Implantable cardioverter-defibrillator in the {side} chest wall.",
    ],
    "ecg_leads": ["ECG leads overlie the chest.", "Monitoring electrodes and wires project over the thorax."],
    "chest_tube": ["{Side} chest tube with its tip at the apex.", "A {side}-sided chest drain is in place."],
    "central_line": [
        "{Side} central venous catheter with its tip in the SVC.",
        "{Side}-sided central line terminating at the cavoatrial junction.",
    ],
    "endotracheal_tube": ["Endotracheal tube tip above the carina.", "ET tube in satisfactory position."],
    "sternotomy_wires": ["Median sternotomy wires.", "Intact sternotomy wires from prior cardiac surgery."],
}
_SEVERITY_WORD = {
    "pleural_effusion": {"small": "small", "moderate": "moderate", "large": "large"},
    "pneumothorax": {"small": "small", "moderate": "moderate", "large": "large"},
    "cardiomegaly": {"small": "mild", "moderate": "moderate", "large": "marked"},
    "edema": {"small": "mild", "moderate": "moderate", "large": "severe"},
    "consolidation": {"small": "patchy", "moderate": "confluent", "large": "extensive"},
    "atelectasis": {"small": "minimal", "moderate": "subsegmental", "large": "lobar"},
    "nodule": {"small": "small", "moderate": "", "large": "large"},
    "mass": {"small": "", "moderate": "", "large": "large"},
    "hiatal_hernia": {"small": "small", "moderate": "moderate", "large": "large"},
}
_FINDING_TEXT = {
    "pleural_effusion": [
        "{sev} {side} pleural effusion.",
        "{sev} {side}-sided pleural effusion with blunting of the costophrenic angle.",
    ],
    "pneumothorax": ["{sev} {side} pneumothorax.", "{sev} {side} apical pneumothorax with a visible pleural line."],
    "cardiomegaly": ["{sev} cardiomegaly.", "The heart is enlarged ({sev} cardiomegaly)."],
    "edema": [
        "{sev} pulmonary edema.",
        "{sev} interstitial pulmonary edema with perihilar haziness and Kerley B lines.",
    ],
    "consolidation": [
        "{sev} consolidation in the {side} {zone} zone.",
        "{sev} {side} {zone} zone airspace opacity, consistent with consolidation.",
    ],
    "nodule": [
        "{sev} nodule in the {side} {zone} zone.",
        "{sev} pulmonary nodule projecting over the {side} {zone} lung.",
    ],
    "mass": ["{sev} mass in the {side} {zone} zone.", "{sev} lobulated mass in the {side} {zone} lung zone."],
    "atelectasis": ["{sev} atelectasis at the {side} base.", "{sev} {side} basilar atelectasis."],
    "hiatal_hernia": [
        "{sev} hiatal hernia.",
        "Retrocardiac air-fluid level, consistent with a {sev} hiatal hernia.",
    ],
}
_NEGATIVES = {
    "pneumothorax": ["No pneumothorax.", "There is no pneumothorax."],
    "pleural_effusion": ["No pleural effusion.", "No pleural effusions."],
    "consolidation": ["No focal consolidation.", "The lungs are clear."],
    "cardiomegaly": ["Heart size is normal.", "The cardiomediastinal silhouette is within normal limits."],
    "edema": ["No pulmonary edema.", "No signs of congestion."],
}


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:]


def describe_finding(f: _Finding, rng: np.random.Generator | None = None) -> str:
    """One sentence for one finding (patient's side), e.g. 'Large right pleural effusion.'."""
    options = _FINDING_TEXT[f.name]
    template = options[int(rng.integers(len(options)))] if rng is not None else options[0]
    return _sentence(template.format(sev=_SEVERITY_WORD[f.name][f.severity], side=f.side or "", zone=f.zone or "mid"))


def report_for(findings: Sequence[_Finding], devices: Sequence[_Device]) -> str:
    """A report for chosen findings and devices, in the phantom's wording (the app's structured helper)."""
    return write_report(findings, devices, np.random.default_rng(0))


def write_report(findings: Sequence[_Finding], devices: Sequence[_Device], rng: np.random.Generator) -> str:
    """A report with FINDINGS and IMPRESSION sections, varied wording, and explicit negations."""
    pick = lambda options: options[int(rng.integers(len(options)))]
    lines = [pick(_DEVICE_TEXT[d.name]).format(side=d.side or "", Side=(d.side or "").capitalize()) for d in devices]
    lines += [describe_finding(f, rng) for f in findings]
    present = {f.name for f in findings}
    for name, negatives in _NEGATIVES.items():
        if name not in present and not (
            name == "consolidation" and present & {"edema", "atelectasis", "mass", "nodule"}
        ):
            lines.append(pick(negatives))
    lines = [_sentence(line) for line in lines]
    if findings:
        impression = " ".join(describe_finding(f) for f in findings)
    else:
        impression = pick(
            ["No acute cardiopulmonary process.", "Normal chest radiograph.", "No acute cardiopulmonary abnormality."]
        )
    if devices and not findings:
        impression = pick(["Support devices as described. ", "Lines and tubes as above. "]) + impression
    return f"FINDINGS: {' '.join(lines)}\nIMPRESSION: {impression}"
