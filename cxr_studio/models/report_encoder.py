"""The report encoder: a WordPiece tokenizer trained on reports and a ``BertModel`` trained from scratch (Cheff).

``encode_reports`` turns report strings into ``prompt_embeds`` ``(B, L, D)`` plus the attention mask
``(B, L)`` that both BERT and the latent UNet's cross-attention use, so padding never leaks into images.
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, BertTokenizerFast

from cxr_studio.config import ReportEncoderConfig

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# A small radiology vocabulary so an untrained (preset) cascade has a sensible tokenizer; training
# replaces it with one learned from the user's own reports.
BASE_CORPUS = """
FINDINGS: IMPRESSION: No acute cardiopulmonary process. Normal chest radiograph. The lungs are clear.
No focal consolidation, pleural effusion or pneumothorax. Heart size is normal. The cardiomediastinal
silhouette is within normal limits. Mild, moderate, marked, severe, small, large, extensive, patchy,
confluent, minimal, subsegmental, lobar cardiomegaly. Right, left, bilateral, upper, middle, lower zone,
lobe, base, apex, apical, basilar, perihilar, retrocardiac. Pleural effusion with blunting of the
costophrenic angle. Pneumothorax with a visible pleural line. Pulmonary edema, interstitial edema,
vascular congestion, Kerley B lines. Airspace opacity consistent with consolidation, pneumonia,
atelectasis. Pulmonary nodule, lobulated mass, lesion. Fracture of the rib. Support devices: pacemaker,
dual-chamber, implantable cardioverter-defibrillator, ICD, shock coil, leads in the right atrium and
right ventricle, ECG leads, monitoring electrodes, chest tube, chest drain, central venous catheter,
central line, SVC, cavoatrial junction, endotracheal tube, ET tube above the carina, sternotomy wires,
prior cardiac surgery, in satisfactory position, expected position, terminating, overlie, project.
Enlarged cardiomediastinum, hilar, mediastinal, aortic knob, trachea, diaphragm, hemidiaphragm, elevated.
"""


class TruncationWarning(UserWarning):
    """A report was longer than the token limit and was cut."""


def train_tokenizer(reports: Iterable[str], *, vocab_size: int, max_tokens: int) -> BertTokenizerFast:
    """Train a lower-casing WordPiece tokenizer on ``reports`` and wrap it as a transformers fast tokenizer.

    The same reports give the same vocabulary in every process. ``tokenizers``' trainer creates the
    continuing-piece tokens (``##a``) in hash-map order, which changes from process to process, and ties between
    merges are broken by token id (huggingface/tokenizers#1794), so two runs of one recipe learnt different
    vocabularies. Listing every ``##c`` of the corpus's alphabet among the initial tokens, in sorted order,
    leaves the trainer nothing to create in that order."""
    corpus = list(reports) + [BASE_CORPUS]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    alphabet = sorted(
        set(string.ascii_lowercase + string.digits + string.punctuation)
        | {ch for text in corpus for ch in normalizer.normalize_str(text) if not ch.isspace()}
    )
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=[*SPECIAL_TOKENS, *(f"##{ch}" for ch in alphabet)],
        # every character gets a token, so unseen words split into pieces instead of [UNK]
        initial_alphabet=alphabet,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return BertTokenizerFast(vocab=tokenizer.get_vocab(), do_lower_case=True, model_max_length=max_tokens)


def build_report_encoder(config: ReportEncoderConfig, *, vocab_size: int) -> BertModel:
    """A randomly initialised ``BertModel`` (in eval mode: a fresh BertModel would apply dropout)."""
    bert_config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=max(config.max_tokens, 8),
    )
    return BertModel(bert_config).eval()


def tokenize_reports(
    tokenizer: BertTokenizerFast,
    reports: Sequence[str],
    *,
    max_tokens: int,
    warn: bool = True,
) -> dict[str, torch.Tensor]:
    """Reports -> ``input_ids`` and ``attention_mask`` ``(B, L)``, padded to the longest, cut at ``max_tokens``.

    Cut reports raise a :class:`TruncationWarning` saying how many tokens were dropped (never the text:
    reports may carry patient data); training passes ``warn=False``.
    """
    lengths = (
        [len(ids) for ids in tokenizer(list(reports), add_special_tokens=True, verbose=False)["input_ids"]]
        if warn
        else []
    )
    for index, length in enumerate(lengths):
        if length > max_tokens:
            warnings.warn(
                f"report {index} has {length} tokens; the last {length - max_tokens} were dropped "
                f"(limit {max_tokens}).",
                TruncationWarning,
                stacklevel=3,
            )
    batch = tokenizer(list(reports), padding="longest", truncation=True, max_length=max_tokens, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def encode_reports(
    tokenizer: BertTokenizerFast,
    encoder: BertModel,
    reports: Sequence[str],
    *,
    max_tokens: int,
    warn: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reports -> ``prompt_embeds`` ``(B, L, D)`` and ``attention_mask`` ``(B, L)`` on the encoder's device
    (``warn``: a :class:`TruncationWarning` for reports cut at ``max_tokens``; training batches pass False)."""
    device = next(encoder.parameters()).device
    batch = tokenize_reports(tokenizer, reports, max_tokens=max_tokens, warn=warn)
    input_ids, attention_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    prompt_embeds = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return prompt_embeds, attention_mask
