"""Patient data: DICOM de-identified on ingest (PS3.15 Annex E basic profile), uploads forgotten once read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from cxr_studio import read_radiograph
from cxr_studio.dicom.deidentify import burned_in_text, deidentify

PHI = (
    "Doe^Jane",
    "MRN-4711",
    "19710203",
    "ACC-998877",
    "St. Elsewhere",
    "Dr^Who",
    "1.2.826.0.1.3680043.99.1234",
    "hidden private",
    "55 Main Street",
)


def dicom_with_phi() -> bytes:
    """A small MONOCHROME2 CR full of identifiers, in every place Annex E names."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = PHI[6] + ".3"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.SOPInstanceUID = PHI[6] + ".3"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = PHI[6] + ".1", PHI[6] + ".2"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI[0], PHI[1], PHI[2]
    ds.AccessionNumber, ds.InstitutionName, ds.ReferringPhysicianName = PHI[3], PHI[4], PHI[5]
    ds.PatientAddress, ds.StudyDate, ds.StudyTime, ds.PatientSex = PHI[8], "20240101", "101010", "F"
    ds.Modality, ds.ImageComments = "CR", "Jane fell"
    item = Dataset()
    item.PerformingPhysicianName, item.ScheduledProcedureStepStartDate = "Dr^Who", "20240101"
    ds.ProcedureCodeSequence = Sequence([item])
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", PHI[7])
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)  # overlay data
    icon = Dataset()
    icon.Rows = icon.Columns = 1
    ds.IconImageSequence = Sequence([icon])
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 40, 36, 16, 12, 11
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = (np.arange(40 * 36, dtype=np.uint16) * 2).tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def header_text(ds) -> str:
    return "\n".join(f"{e.tag} {e.value!r}" for e in ds.iterall()) + repr(ds.file_meta)


def test_a_dicom_header_is_de_identified_on_read():
    data = dicom_with_phi()
    raw = read_radiograph(data, deidentify=False)
    assert all(phi in header_text(raw.dicom) for phi in PHI[:6])  # the fixture really carries them
    clean = read_radiograph(data)
    text = header_text(clean.dicom)
    leaked = [phi for phi in PHI if phi in text]
    assert not leaked, leaked
    assert clean.dicom.PatientIdentityRemoved == "YES" and clean.dicom.PatientName == "ANONYMOUS^"
    assert clean.dicom.StudyDate == "" and clean.dicom.Modality == "CR" and clean.dicom.PatientSex == "F"
    assert not any(e.tag.is_private for e in clean.dicom.iterall())
    assert not any(0x6000 <= e.tag.group <= 0x60FF for e in clean.dicom)
    assert "IconImageSequence" not in clean.dicom and "IconImageSequence" in raw.dicom
    assert clean.dicom.SOPClassUID == raw.dicom.SOPClassUID  # a class, not an instance: kept
    assert clean.dicom.file_meta.MediaStorageSOPInstanceUID == clean.dicom.SOPInstanceUID
    assert np.array_equal(clean.pixels, raw.pixels) and np.array_equal(clean.display, raw.display)


def test_pseudonyms_are_stable_and_keep_series_together():
    a, b = read_radiograph(dicom_with_phi()).dicom, read_radiograph(dicom_with_phi()).dicom
    assert a.PatientID == b.PatientID and len(a.PatientID) == 16 and a.PatientID != PHI[1]
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.StudyInstanceUID != a.SeriesInstanceUID
    other = deidentify(read_radiograph(dicom_with_phi(), deidentify=False).dicom, salt=b"another site")
    assert other.PatientID != a.PatientID and other.StudyInstanceUID != a.StudyInstanceUID


def test_real_chest_cr_headers_come_out_clean():
    data_store = pytest.importorskip("data_store")
    path = Path(data_store.__file__).parent / "data" / "RG1_UNCR.dcm"
    raw, clean = read_radiograph(path, deidentify=False).dicom, read_radiograph(path).dicom
    for keyword in ("PatientName", "PatientID", "StudyDate", "InstitutionName", "ReferringPhysicianName"):
        if keyword in raw and str(raw.data_element(keyword).value):
            assert str(raw.data_element(keyword).value) not in header_text(clean), keyword
    # de-identification keeps the header's warning that text may be burned into the pixels
    assert burned_in_text(clean) == (str(raw.get("BurnedInAnnotation", "")).upper() == "YES")


def test_the_burned_in_text_warning_survives_deidentification():
    """A header that says text is burned into the pixels still says so after de-identification (the app warns);
    one that says NO, or nothing, does not."""
    import pydicom

    for flag, expected in (("YES", True), ("NO", False), (None, False)):
        ds = pydicom.Dataset()
        ds.PatientName, ds.PatientID, ds.Modality = "Doe^Jane", "MRN-4711", "CR"
        if flag is not None:
            ds.BurnedInAnnotation = flag
        assert burned_in_text(deidentify(ds)) is expected, flag


def test_derived_export_carries_only_the_pseudonymised_identity():
    from cxr_studio.dicom.export import derived_dicom

    radiograph = read_radiograph(dicom_with_phi())
    exported = read_radiograph(
        derived_dicom(radiograph.pixels, radiograph.bit_depth, {"edit": "inpaint"}, source=radiograph.dicom),
        deidentify=False,
    ).dicom
    assert exported.PatientID == radiograph.dicom.PatientID and exported.ImageType[0] == "DERIVED"
    assert not [phi for phi in PHI if phi in header_text(exported)]


def test_the_app_forgets_an_upload_once_read(tmp_path):
    from cxr_studio.app_model import AppModel

    model = AppModel(None, cache=tmp_path / "cache")
    folder = tmp_path / "cache" / "d41d8cd98f00b204"
    folder.mkdir(parents=True)
    upload = folder / "Doe_Jane_MRN-4711.dcm"
    upload.write_bytes(dicom_with_phi())
    warnings = []
    radiograph = model.read_upload(str(upload), warn=warnings.append)
    assert radiograph.dicom.PatientName == "ANONYMOUS^" and warnings == []
    assert not upload.exists() and not folder.exists()  # the name that carried PHI is gone from disk
    # another session that uploaded the same file (one path per content) gets the same radiograph
    assert model.read_upload(str(upload)) is radiograph
    outside = tmp_path / "Doe_Jane.dcm"
    outside.write_bytes(dicom_with_phi())
    model.read_upload(str(outside))
    assert outside.exists()  # never deletes anything outside the upload cache


def test_an_export_survives_a_kill_mid_write(tmp_path):
    """A writer killed at random moments while rewriting one 16-bit PNG: the file is always absent or whole."""
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "export.png"
    script = (
        "import numpy as np, sys; from cxr_studio import save_png\n"
        "rng = np.random.default_rng(0); image = rng.integers(0, 65535, (1024, 1024), dtype=np.uint16)\n"
        "while True: save_png(sys.argv[1], image, parameters={'n': int(rng.integers(1e9))})\n"
    )
    root = Path(__file__).resolve().parents[1]
    for delay in (0.1, 0.3, 0.45, 0.7):
        process = subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=root)
        deadline = time.monotonic() + 120
        while not target.exists() and time.monotonic() < deadline:  # a busy machine starts Python slowly
            time.sleep(0.05)
        time.sleep(delay)  # then kill at some moment of a rewrite
        process.send_signal(signal.SIGKILL)
        process.wait()
        if target.exists():
            radiograph = read_radiograph(target)  # raises on a truncated PNG
            assert radiograph.pixels.shape == (1024, 1024) and radiograph.bit_depth == 16
    assert target.exists(), "the writer never finished one file: the test proved nothing"


def test_re_identification_network_pairs_calibration_and_round_trip(tmp_path):
    """The Siamese re-identification building blocks (not yet a validated metric: see the note)."""
    import torch

    from cxr_studio import InputError
    from cxr_studio.data.phantom import write_dataset
    from cxr_studio.evaluation import reid
    from cxr_studio.evaluation.classifier import load_split
    from cxr_studio.models.reid import ReIdConfig, ReIdNetwork

    with pytest.raises(InputError, match="studies-per-patient"):
        reid.pairs(["a", "b", "c"], 4, np.random.default_rng(0))  # every patient imaged once: nothing to learn
    manifest = write_dataset(tmp_path / "set", n=36, size=32, seed=0, quiet=True, studies=3)
    images, _, _, rows = load_split(manifest, "train", size=32)
    patients = [row["patient_id"] for row in rows]
    picked = reid.pairs(patients, 10, np.random.default_rng(0))
    assert (
        all((patients[i] == patients[j]) == bool(same) and (i != j) for i, j, same in picked)
        and picked[:, 2].sum() == 5
    )
    config = ReIdConfig(image_size=32, embedding_size=8, hidden_sizes=(8, 16), depths=(1, 1))
    copies = reid.pairs(patients, 400, np.random.default_rng(0), copies=0.5)
    same_image = copies[:, 0] == copies[:, 1]
    assert copies[same_image, 2].all() and 60 < same_image.sum() < 140  # half of the 200 positives, give or take
    moved = reid.rescale(torch.from_numpy(images[:4]), np.random.default_rng(0)).numpy()
    assert moved.shape == images[:4].shape and not np.array_equal(moved, images[:4])
    assert np.abs(moved - images[:4]).mean() < np.abs(images[4:8] - images[:4]).mean()  # rescaled, still that image
    model = reid.fit_reid(images, patients, config=config, steps=3, batch_size=8)
    with pytest.raises(InputError, match="calibrate"):
        reid.screen(model, images[:2], images)
    a, b = images[:6], images[6:12]
    assert np.array_equal(reid.pair_scores(model, a, b), reid.pair_scores(model, b, a))  # symmetric
    calibration = reid.calibrate(model, images, patients, false_positive_rate=0.1, n=200)
    assert calibration["false_positive_rate"] <= 0.1 and model.threshold == calibration["threshold"]
    screened = reid.screen(model, images[:4], images)
    assert screened["scores"].shape == (4,) and 0 <= screened["mean_score"] <= screened["max_score"] <= 1
    # the screen's own threshold: from unseen patients' best scores against the training images
    seen = sorted(set(patients))[: len(set(patients)) // 2]
    training = images[[p in seen for p in patients]]
    unseen = images[[p not in seen for p in patients]]
    reid.calibrate_screen(model, unseen, training, false_positive_rate=0.25)
    assert reid.screen(model, unseen, training)["over_threshold"] <= 0.25 * len(unseen)
    model.save(tmp_path / "reid")
    again = ReIdNetwork.load(tmp_path / "reid")
    assert again.threshold == model.threshold and again.false_positive_rate == 0.25
    assert np.array_equal(reid.pair_scores(again, a, b), reid.pair_scores(model, a, b))


def test_an_exact_copy_always_scores_the_re_identification_maximum():
    """The score is monotone in the embeddings' cosine similarity: an image against itself beats it against any
    other, whatever the (here random) weights, so no threshold can let an exact copy through."""
    import torch

    from cxr_studio.models.reid import ReIdConfig, ReIdNetwork

    torch.manual_seed(0)
    model = ReIdNetwork(ReIdConfig(image_size=32, embedding_size=8, hidden_sizes=(8, 16), depths=(1, 1))).eval()
    images = torch.rand(6, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        e = model.embed(images)
        scores = model.compare(e[:, None], e[None])
    assert torch.allclose(e.norm(dim=-1), torch.ones(6), atol=1e-5)
    assert torch.allclose(scores, scores.T) and (scores.diagonal()[:, None] >= scores - 1e-5).all()


def test_re_identification_privacy_report_on_any_sizes():
    """The evaluation's re-ID rows: thresholds from unseen images, exact copies always caught (the maximum score),
    inputs of another size resized to the network's."""
    import torch

    from cxr_studio.evaluation import reid
    from cxr_studio.models.reid import ReIdConfig, ReIdNetwork

    torch.manual_seed(0)
    model = ReIdNetwork(ReIdConfig(image_size=32, embedding_size=8, hidden_sizes=(8, 16), depths=(1, 1))).eval()
    rng = np.random.default_rng(0)
    training, unseen, generated = (rng.uniform(-1, 1, (n, 1, 48, 48)).astype(np.float32) for n in (20, 16, 6))
    report = reid.privacy_report(model, generated, training, unseen, false_positive_rate=0.1, planted=10)
    assert report["samples"] == 6 and report["calibrated_on_unseen_images"] == 8
    assert 0 <= report["mean_score"] <= report["max_score"] <= 1 and 0 <= report["samples_over_threshold"] <= 6
    assert report["planted_exact_copies_detected"] == 1.0
    assert (
        0 <= report["planted_near_copies_detected"] <= 1
        and 0 <= report["false_alarm_rate_on_other_unseen_images"] <= 1
    )


def test_an_upload_that_says_text_is_burned_in_warns_the_user(tmp_path):
    import pydicom

    from cxr_studio.app_model import AppModel

    ds = pydicom.dcmread(io.BytesIO(dicom_with_phi()))
    ds.BurnedInAnnotation = "YES"
    upload = tmp_path / "burned.dcm"
    ds.save_as(upload)
    warnings = []
    assert AppModel(None, cache=tmp_path / "cache").read_upload(str(upload), warn=warnings.append) is not None
    assert len(warnings) == 1 and "burned into its pixels" in warnings[0]
