"""DICOM: reading a radiograph (:mod:`.reading`: modality and VOI LUT, MONOCHROME1), de-identification on read
(:mod:`.deidentify`) and exports a PACS and a validator accept (:mod:`.export`).

Nothing is imported here: :mod:`cxr_studio.imaging` uses :mod:`.reading`, and :mod:`.export` uses imaging.
"""
