"""DICOM de-identification on ingest: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Every DICOM header CXR Studio reads goes through :func:`deidentify` before it is kept, cached, logged
or shown (``read_radiograph`` does it unless told ``deidentify=False``). Rules, applied to the whole
dataset including nested sequences:

- private tags, curves (groups 50xx) and overlays (60xx, which can carry burned-in text) are removed;
- every person name (VR PN) is removed, except Patient's Name, which becomes ``ANONYMOUS^``;
- every date, time and date-time (DA, TM, DT) is emptied (Annex E: zero length or removed);
- the identifying attributes of Annex E's table (IDs, institutions, addresses, physicians, devices,
  free-text comments and descriptions) are removed, Patient ID becomes a salted pseudonym;
- instance UIDs are replaced by new ones derived from the old with a salt (the same input gives the
  same new UID within one salt, so series stay together; the old UID cannot be recovered);
- Patient Identity Removed = YES and the method is recorded (code 113100, basic profile).

Pixel data are not touched: a header that says ``BurnedInAnnotation = YES`` is reported by
:func:`burned_in_text` so the caller can warn that identifiers may remain in the pixels.
"""

from __future__ import annotations

import hashlib
from typing import Any

PROFILE = "PS3.15 Annex E Basic Profile (CXR Studio)"  # LO: at most 64 characters; the code says the rest

# Annex E attributes removed outright (X / X/Z / X/D actions that we resolve to removal), by keyword.
REMOVE = frozenset(
    {
        "AccessionNumber",
        "AcquisitionComments",
        "AdditionalPatientHistory",
        "AdmissionID",
        "AdmittingDiagnosesDescription",
        "Allergies",
        "BranchOfService",
        "ConsultingPhysicianName",
        "ContentCreatorName",
        "CountryOfResidence",
        "CurrentPatientLocation",
        "DerivationDescription",
        "DeviceSerialNumber",
        "DeviceUID",
        "EthnicGroup",
        "FillerOrderNumberImagingServiceRequest",
        "ImageComments",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "InstitutionName",
        "IssuerOfPatientID",
        "MedicalAlerts",
        "MedicalRecordLocator",
        "MilitaryRank",
        "NameOfPhysiciansReadingStudy",
        "Occupation",
        "OperatorsName",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientAddress",
        "PatientAge",
        "PatientBirthName",
        "PatientBirthTime",
        "PatientComments",
        "PatientInsurancePlanCodeSequence",
        "PatientMotherBirthName",
        "PatientReligiousPreference",
        "PatientSize",
        "PatientState",
        "PatientTelephoneNumbers",
        "PatientWeight",
        "PerformedProcedureStepDescription",
        "PerformedProcedureStepID",
        "PerformingPhysicianName",
        "PhysiciansOfRecord",
        "PlacerOrderNumberImagingServiceRequest",
        "PregnancyStatus",
        "ReferencedPatientSequence",
        "ReferencedStudySequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianName",
        "ReferringPhysicianTelephoneNumbers",
        "RegionOfResidence",
        "RequestAttributesSequence",
        "RequestedProcedureDescription",
        "RequestedProcedureID",
        "RequestingPhysician",
        "ResponsibleOrganization",
        "ResponsiblePerson",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepID",
        "SeriesDescription",
        "SmokingStatus",
        "SpecialNeeds",
        "StationName",
        "StudyDescription",
        "StudyID",
        "TextComments",
        "TextString",
        "TopicAuthor",
        "TopicKeywords",
        "TopicSubject",
        "TopicTitle",
        "VerifyingObserverName",
        "VerifyingOrganization",
        "VisitComments",
        "ProtocolName",
        "PatientSexNeutered",
        "PatientTransportArrangements",
        "IconImageSequence",  # a thumbnail of the pixels, with whatever text they carry
    }
)
# UIDs that name a class or a syntax, not an instance: kept.
KEEP_UIDS = frozenset(
    {
        "SOPClassUID",
        "MediaStorageSOPClassUID",
        "TransferSyntaxUID",
        "ReferencedSOPClassUID",
        "CodingSchemeUID",
        "ImplementationClassUID",
        "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID",
    }
)


def pseudonym(value: str, salt: bytes) -> str:
    """A stable, non-reversible stand-in for an identifier (16 hex digits)."""
    return hashlib.sha256(salt + value.encode("utf-8", "replace")).hexdigest()[:16]


def deidentify(ds: Any, *, salt: bytes = b"cxr-studio") -> Any:
    """De-identify ``ds`` (a ``pydicom.Dataset``) in place and return it; see the module docstring."""
    from pydicom.uid import generate_uid

    ds.remove_private_tags()
    patient_id = str(ds.get("PatientID", "") or "")

    def clean(dataset: Any, element: Any) -> None:
        group, keyword = element.tag.group, element.keyword
        if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF or keyword in REMOVE:
            del dataset[element.tag]
        elif element.VR == "PN":
            if keyword == "PatientName":
                element.value = "ANONYMOUS^"  # family name only: the caret says so (PS3.5 6.2.1.2)
            else:
                del dataset[element.tag]
        elif element.VR in ("DA", "TM", "DT"):
            element.value = ""
        elif element.VR == "UI" and keyword not in KEEP_UIDS and element.value:
            old = element.value if element.VM <= 1 else list(element.value)
            renew = lambda uid: generate_uid(entropy_srcs=[salt.hex(), str(uid)])
            element.value = renew(old) if element.VM <= 1 else [renew(uid) for uid in old]

    ds.walk(clean)
    if (
        getattr(ds, "file_meta", None) is not None
        and "MediaStorageSOPInstanceUID" in ds.file_meta
        and "SOPInstanceUID" in ds
    ):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = pseudonym(patient_id, salt) if patient_id else ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = PROFILE
    return ds


def burned_in_text(ds: Any) -> bool:
    """True when the header says identifying text may be burned into the pixels."""
    return str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
