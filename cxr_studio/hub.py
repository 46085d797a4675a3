"""Optional Hugging Face Hub helpers for users who are online. Nothing else in CXR Studio uses the network.

``push_to_hub`` uploads a model folder written by ``CXRStudio.save_pretrained``; ``pull_from_hub``
downloads one, or a diffusers model (RoentGen, CheXGenBench's fine-tunes; gated repositories need a ``token``),
into a local folder that ``cxr_studio.load_model`` then loads offline. Only safetensors, JSON, cards and
tokenizer files are fetched: pickles never are.
"""

from __future__ import annotations

import os
from pathlib import Path

from cxr_studio.checkpoints import verify_folder
from cxr_studio.errors import InputError
from cxr_studio.model_folders import describe

ALLOWED_FILES = ["*.json", "*.safetensors", "*.md"]
# tokenizers: CLIP's vocab/merges (.txt), T5's and Gemma's SentencePiece models (.model, a protobuf, not a pickle)
TOKENIZER_FILES = ["*.txt", "*.model"]


def push_to_hub(
    folder: str | os.PathLike[str], repo_id: str, *, token: str | None = None, private: bool = True
) -> str:
    """Upload a verified model folder to ``repo_id`` (created private by default); returns the commit URL."""
    from huggingface_hub import HfApi

    verify_folder(folder)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=ALLOWED_FILES)
    except Exception as err:  # network, auth and permission errors all mean "could not upload"
        raise InputError(f"could not upload to the Hub repository {repo_id!r}: {err}") from err
    return str(info)


def pull_from_hub(
    repo_id: str, folder: str | os.PathLike[str], *, revision: str | None = None, token: str | None = None
) -> Path:
    """Download a model folder from the Hub into ``folder`` and check it; returns the folder. A cascade's files
    are checked against its ``sha256sums.json``; a diffusers folder must name a supported pipeline."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            local_dir=str(folder),
            allow_patterns=ALLOWED_FILES + TOKENIZER_FILES,
            token=token,
        )
    except Exception as err:  # offline (HF_HUB_OFFLINE), unknown repository, no access
        raise InputError(
            f"could not download {repo_id!r} from the Hub (offline, or no such repository?): {err}"
        ) from err
    entry = describe(path)
    if entry is not None and entry.family != "CXR Studio cascade":
        if entry.problem:
            raise InputError(f"{repo_id} was downloaded to {path}, but cannot be loaded: {entry.problem}.")
        return Path(path)
    verify_folder(path)
    return Path(path)
