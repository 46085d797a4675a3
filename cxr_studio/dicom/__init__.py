"""DICOM beyond reading pixels (which :mod:`cxr_studio.imaging` owns, with every other image conversion):
de-identification on read (:mod:`.deidentify`) and exports a PACS and a validator accept (:mod:`.export`).

Nothing is imported here: :mod:`cxr_studio.imaging` uses :mod:`.deidentify`, and :mod:`.export` uses imaging.
"""
