"""What every stage task shares: the folder it starts from, the sample grids' reports, the saved cascade."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from cxr_studio import CXRStudio
from cxr_studio.config import StudioConfig, preset
from cxr_studio.data.dataset import EmptySplit
from training.config import TrainConfig

log = logging.getLogger("training")

# Fixed reports and seeds for the latent stage's sample grids: one per column.
GRID_REPORTS = (
    "Normal chest radiograph.",
    "Large right pleural effusion.",
    "Large left pleural effusion.",
    "Large right pneumothorax.",
    "Marked cardiomegaly.",
    "Left chest wall pacemaker with leads in the right atrium and right ventricle.",
)


def load_or_create(config: TrainConfig) -> CXRStudio:
    """The cascade in ``config.out``, or a fresh one of ``config.preset`` when the folder does not exist yet."""
    if Path(config.out).is_dir():
        return CXRStudio.from_pretrained(config.out)
    log.info("creating a new %s cascade in %s", config.preset, config.out)
    return CXRStudio.from_config(preset(config.preset), seed=config.seed)


def grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of equally sized ``[0, 1]`` images -> one image."""
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


class StageBase:
    def __init__(self, config: TrainConfig, studio: CXRStudio) -> None:
        self.config = config
        self.studio = studio

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def sample_weights(self) -> np.ndarray | None:
        return None

    def _val(self, dataset_cls, **kwargs) -> Dataset | None:
        try:
            return dataset_cls(self.config.manifest, splits=("val",), **kwargs)
        except EmptySplit:  # no validation split in this manifest (a corrupt one still raises)
            return None


def rebuilt(studio: CXRStudio, config: StudioConfig, **replaced: Any) -> CXRStudio:
    """``studio`` under ``config`` with the ``replaced`` components (a fine-tuning that changes the architecture)."""
    return CXRStudio(
        config=config, model_id=studio.model_id, device=studio.device, **{**studio.components(), **replaced}
    )


def save(studio: CXRStudio, config: StudioConfig, out: str, **replaced: Any) -> None:
    """``studio`` with the ``replaced`` components under ``config`` written to the model folder ``out``."""
    rebuilt(studio, config, **replaced).save_pretrained(out)  # the constructor puts every module in eval mode
