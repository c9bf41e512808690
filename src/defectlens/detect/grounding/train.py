"""Training the grounding head (connector + tokens + text adapter) on cached frozen features.

Encoders stay frozen and each image is encoded once (:class:`FeatureCache`); training then
only runs the tiny head, so a few minutes on two CPU cores cover all the shared data.

Losses, per image on its feature grid (cells on the mirrored border ignored):
* focal loss on the SEG_DEFECT probability against the mask's coverage of each cell;
* soft dice on defective images (focal alone under-weights small defects);
* InfoNCE on types: the mask-pooled patch embedding against every training description,
  its own type being the positive.
Augmentation acts on the cached grids: random 90° rotations and flips (surfaces have no
preferred orientation), channel dropout and noise on the features, a random gain on the
similarity channels, and batch-context dropout. Batch context is computed within each
training category, as it is within the batch at inspection.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from defectlens.detect.grounding.data import (
    NORMAL,
    FeatureCache,
    TrainingCategory,
    collect_training_data,
    target_grid,
)
from defectlens.detect.grounding.features import N_BATCH_CHANNELS, N_SIMILARITY_CHANNELS, add_batch_context
from defectlens.detect.grounding.model import GroundingConfig, GroundingModel, Vocabulary, embed_taxonomy
from defectlens.encode import PatchEncoder
from defectlens.encode.text import TextEncoder
from defectlens.errors import ConfigError
from defectlens.taxonomy import Taxonomy

Progress = Callable[[int], None]
ProgressBars = Callable[[str, int], AbstractContextManager[Progress | None]]
"""Opens the progress of one counted stage, ``(description, total)``, and yields its
``advance(n)`` (or None); training runs two stages in turn (the CLI passes its progress bar)."""


def _no_bars(_description: str, _total: int) -> AbstractContextManager[Progress | None]:
    return contextlib.nullcontext()
Paraphrases = Callable[[Taxonomy, int], Mapping[str, Sequence[str]]]
"""(taxonomy, n) -> up to n other phrasings of each type's description, by type name."""


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings (saved in the model's JSON for the record)."""

    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.05
    n_normal: int = 40
    """Normal images per category used as all-normal negatives."""
    max_defective: int | None = None
    """Cap on defective images per category (None: all with masks)."""
    focal_gamma: float = 2.0
    focal_alpha: float = 0.75
    """Weight of the defective class in the focal loss (defect cells are the minority)."""
    dice_weight: float = 1.0
    type_weight: float = 0.5
    feature_dropout: float = 0.1
    feature_noise: float = 0.1
    context_dropout: float = 0.25
    """Share of training crops whose batch-context channels are zeroed (a lone image)."""
    crop: int = 24
    """Training windows are crop×crop feature cells (padded when the grid is smaller)."""
    seed: int = 0
    paraphrases: int = 0
    """Paraphrases per training description (written by the local language model, see
    :mod:`defectlens.explain.paraphrase`); each step draws one phrasing per type."""
    time_budget_s: float | None = None
    """Stop training (not caching) after this many seconds."""

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class TrainingItem:
    """One cached image ready for the head."""

    inputs: torch.Tensor
    footprint: torch.Tensor
    target: torch.Tensor
    vocab_index: int
    type_index: int
    """Index into the global description list, or -1 for a normal image."""


@dataclass(frozen=True)
class TrainingSummary:
    """What training did, for logs, the CLI and the benchmark (``GroundingModel.fit_summary``
    of a model :func:`train_grounding_model` made)."""

    categories: tuple[str, ...]
    n_images: int
    n_defective: int
    cache_seconds: float
    train_seconds: float
    epochs: int
    losses: tuple[float, ...] = ()
    """Mean training loss per epoch."""

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {**self.__dict__, "categories": list(self.categories), "losses": [round(x, 5) for x in self.losses]}


def build_items(
    categories: Sequence[TrainingCategory],
    cache: FeatureCache,
    vocabs: Sequence[Vocabulary],
    progress: Progress | None = None,
) -> list[TrainingItem]:
    """Encode (or fetch from the cache) every sample and attach its target and labels."""
    items = []
    offset = 0
    for ci, cat in enumerate(categories):
        # Batch context within the category: its images are read together, as at inspection.
        grids = add_batch_context(cache.get_many([s.path for s in cat.samples], progress), seed=ci)
        taxonomy = vocabs[ci].taxonomy
        names = list(taxonomy.names)
        for s, g in zip(cat.samples, grids, strict=True):
            # By the taxonomy's own reading of a type folder's name (any case: a TEST/Crack folder had ended the training in
            # "ValueError: 'Crack' is not in list", where evaluate and --examples read it; regression probe 2026-12-07).
            known = taxonomy.get(s.defect_type) if s.defect_type != NORMAL else None
            t = -1 if s.defect_type == NORMAL else offset + names.index(known.name if known is not None else s.defect_type)
            items.append(TrainingItem(g.inputs, g.footprint, target_grid(s, g), ci, t))
        offset += len(names)
    return items


def _crop(x: torch.Tensor, fp: torch.Tensor, tg: torch.Tensor, size: int, rng: np.random.Generator, defective: bool):
    """A size×size window of the grid (zero-padded, footprint 0 on padding), centred near a
    defect cell most of the time so that defective crops keep their defect."""
    _, h, w = x.shape
    if h > size or w > size:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        if defective and rng.random() < 0.8:
            ys, xs = torch.nonzero(tg * fp > 0.25, as_tuple=True)
            if len(ys):
                j = int(rng.integers(len(ys)))
                cy, cx = int(ys[j]), int(xs[j])
        y0 = min(max(0, cy - size // 2 + int(rng.integers(-size // 4, size // 4 + 1))), max(0, h - size))
        x0 = min(max(0, cx - size // 2 + int(rng.integers(-size // 4, size // 4 + 1))), max(0, w - size))
        x, fp, tg = x[:, y0 : y0 + size, x0 : x0 + size], fp[y0 : y0 + size, x0 : x0 + size], tg[y0 : y0 + size, x0 : x0 + size]
    ph, pw = size - x.shape[1], size - x.shape[2]
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
        fp, tg = F.pad(fp, (0, pw, 0, ph)), F.pad(tg, (0, pw, 0, ph))
    return x, fp, tg


def _augment(item: TrainingItem, cfg: TrainingConfig, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """Rotate/flip (surfaces have no preferred orientation), crop to the training window,
    drop and jitter feature channels, rescale the similarity channels, and sometimes drop the
    batch context."""
    x, fp, tg = item.inputs.float(), item.footprint, item.target
    k = int(rng.integers(4))
    if k:
        x, fp, tg = (torch.rot90(t, k, dims=(-2, -1)) for t in (x, fp, tg))
    if rng.random() < 0.5:
        x, fp, tg = (torch.flip(t, dims=(-1,)) for t in (x, fp, tg))
    x, fp, tg = _crop(x, fp, tg, cfg.crop, rng, item.type_index >= 0)
    c = x.shape[0] - N_SIMILARITY_CHANNELS
    feats, sim = x[:c], x[c:]
    if cfg.feature_dropout > 0:
        keep = (torch.rand(c, 1, 1) > cfg.feature_dropout).float() / (1 - cfg.feature_dropout)
        feats = feats * keep
    if cfg.feature_noise > 0:
        # Per-channel gain and offset: cheap, and mimics a part whose texture responds more or
        # less strongly in some channels (a different material), unlike per-cell noise.
        gain = 1 + torch.randn(c, 1, 1) * cfg.feature_noise
        feats = feats * gain + torch.randn(c, 1, 1) * cfg.feature_noise
    sim = sim * float(rng.uniform(0.8, 1.25))
    if rng.random() < cfg.context_dropout:
        # As if the image were inspected alone: the model must not depend on a batch.
        sim = torch.cat([sim[:-N_BATCH_CHANNELS], torch.zeros_like(sim[-N_BATCH_CHANNELS:])])
    return torch.cat([feats, sim]), fp, tg


def _batch_loss(
    model: GroundingModel,
    x: torch.Tensor,
    fp: torch.Tensor,
    tg: torch.Tensor,
    vocab_index: torch.Tensor,
    type_index: torch.Tensor,
    vocabs: Sequence[Vocabulary],
    all_desc: torch.Tensor,
    cfg: TrainingConfig,
) -> torch.Tensor:
    """Focal + dice + type InfoNCE of a batch (N, C, S, S) of crops; cells off the image ignored."""
    head = model.head
    patches = head.embed_patches(x)
    objects = torch.stack([v.object_embedding for v in vocabs])
    tokens = torch.stack([head.seg_tokens(o) for o in objects])[vocab_index]  # (N, 2, D)
    sims = torch.einsum("ndhw,ntd->nthw", patches, tokens) * head.seg_scale
    logits = sims[:, 1] - sims[:, 0]
    on = (fp > 0.5).float()
    n_on = on.sum(dim=(1, 2)).clamp_min(1.0)
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, tg, reduction="none")
    p_t = p * tg + (1 - p) * (1 - tg)
    alpha = cfg.focal_alpha * tg + (1 - cfg.focal_alpha) * (1 - tg)
    focal = ((alpha * (1 - p_t) ** cfg.focal_gamma * bce * on).sum(dim=(1, 2)) / n_on).mean()
    # x10: the focal term is tiny once most cells are easy; keep it on the dice's scale.
    loss = 10.0 * focal
    y = tg * on
    defective = (type_index >= 0) & (y.sum(dim=(1, 2)) > 0)
    if bool(defective.any()):
        pd, yd = p[defective] * on[defective], y[defective]
        dice = 1 - (2 * (pd * yd).sum(dim=(1, 2)) + 1) / (pd.sum(dim=(1, 2)) + yd.sum(dim=(1, 2)) + 1)
        loss = loss + cfg.dice_weight * dice.mean()
        w = yd[:, None]
        pooled = F.normalize((patches[defective] * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp_min(1e-6), dim=1)
        type_logits = head.type_scale * pooled @ head.adapt_text(all_desc).T
        loss = loss + cfg.type_weight * F.cross_entropy(type_logits, type_index[defective])
    return loss


def fit_head(
    model: GroundingModel,
    items: Sequence[TrainingItem],
    vocabs: Sequence[Vocabulary],
    cfg: TrainingConfig,
    progress: Progress | None = None,
) -> list[float]:
    """Optimise ``model.head`` on prepared items; returns the mean loss of each epoch.

    The augmentations draw from torch's global generator, seeded with ``cfg.seed`` for a
    repeatable run; the caller's random state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return _fit_head_seeded(model, items, vocabs, cfg, progress)


def _fit_head_seeded(
    model: GroundingModel,
    items: Sequence[TrainingItem],
    vocabs: Sequence[Vocabulary],
    cfg: TrainingConfig,
    progress: Progress | None,
) -> list[float]:
    rng = np.random.default_rng(cfg.seed)
    all_desc = torch.cat([v.description_embeddings for v in vocabs])
    # Every vocabulary has its phrasings when paraphrases were given (embed_taxonomy), none otherwise.
    phrasings = [s for v in vocabs for s in v.sentence_embeddings] if all(v.sentence_embeddings for v in vocabs) else []
    head = model.head
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(items) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1)
    start = time.perf_counter()
    history = []
    for _epoch in range(cfg.epochs):
        order = rng.permutation(len(items))
        epoch_loss = 0.0
        for s in range(steps_per_epoch):
            batch = [items[i] for i in order[s * cfg.batch_size : (s + 1) * cfg.batch_size]]
            # Crops of one size stack into a single tensor: one forward per batch, not per image.
            xs, fps, tgs = zip(*(_augment(item, cfg, rng) for item in batch), strict=True)
            if phrasings:
                # Text augmentation: one phrasing of each type for this step, so the adapter
                # learns what the sentences share rather than the one sentence each type has.
                all_desc = torch.stack([s[int(rng.integers(len(s)))] for s in phrasings])
            loss = _batch_loss(
                model,
                torch.stack(xs),
                torch.stack(fps),
                torch.stack(tgs),
                torch.tensor([i.vocab_index for i in batch]),
                torch.tensor([i.type_index for i in batch]),
                vocabs,
                all_desc,
                cfg,
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            epoch_loss += float(loss.detach())
        history.append(epoch_loss / steps_per_epoch)
        if progress:
            progress(1)
        if cfg.time_budget_s is not None and time.perf_counter() - start > cfg.time_budget_s:
            break
    head.eval()
    return history


def prepare_training(
    dataset_dirs: Sequence[str | Path],
    config: GroundingConfig,
    training: TrainingConfig,
    encoder: PatchEncoder | None = None,
    text: TextEncoder | None = None,
    paraphrases: Paraphrases | None = None,
) -> tuple[GroundingModel, list[TrainingCategory]]:
    """Check the datasets (fails fast, before any encoding) and build an untrained model whose
    vocabularies are the categories' taxonomies.

    With ``training.paraphrases`` > 0, ``paraphrases(taxonomy, n)`` (type name -> phrasings)
    supplies the other phrasings; it is required then, and called before any image is encoded.
    """
    categories = collect_training_data(dataset_dirs, training.n_normal, training.max_defective, training.seed)
    if training.paraphrases > 0 and paraphrases is None:
        raise ConfigError("paraphrases were asked for but no source of them was given", None, "pass paraphrases= (see defectlens.explain.paraphrase)")
    alternatives = [paraphrases(c.taxonomy, training.paraphrases) if paraphrases and training.paraphrases > 0 else None for c in categories]
    # Seed before the head is built: its initial weights are part of what makes a run repeatable
    # (inside fork_rng: the caller's random state is left as it was).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        model = GroundingModel(config, encoder=encoder, text=text)
    model.set_vocabularies([embed_taxonomy(model.text, c.taxonomy, config.templates, a) for c, a in zip(categories, alternatives, strict=True)])
    return model, categories


def train_grounding_model(
    dataset_dirs: Sequence[str | Path],
    config: GroundingConfig | None = None,
    training: TrainingConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressBars | None = None,
    encoder: PatchEncoder | None = None,
    text: TextEncoder | None = None,
    cache: FeatureCache | None = None,
    paraphrases: Paraphrases | None = None,
) -> GroundingModel:
    """Train a grounding model on MVTec-layout categories with masks and described defect types;
    the returned model's ``fit_summary`` (a :class:`TrainingSummary`) says what training did.

    All dataset checks run first (no taxonomy, missing descriptions, no masks: a clear error
    before any image is encoded). ``cache_dir`` keeps the encoded features on disk so a second
    run skips encoding; ``cache`` shares an in-memory cache (benchmarks re-train per fold);
    ``progress`` opens a progress display for each of the two stages, encoding and training.
    """
    config = config or GroundingConfig()
    training = training or TrainingConfig()
    model, categories = prepare_training(dataset_dirs, config, training, encoder, text, paraphrases)
    return train_prepared(model, categories, training, cache or FeatureCache(model.encoder, config.side, config.grey, cache_dir), progress)


def train_prepared(
    model: GroundingModel,
    categories: Sequence[TrainingCategory],
    training: TrainingConfig,
    cache: FeatureCache,
    progress: ProgressBars | None = None,
) -> GroundingModel:
    """Encode the images of :func:`prepare_training`'s categories (through ``cache``) and train
    ``model``'s head on them; its ``fit_summary`` says what training did. The second half of
    :func:`train_grounding_model`, for a caller that sizes its progress bars in between."""
    bars = progress or _no_bars
    vocabs = model.vocabularies
    t0 = time.perf_counter()
    with bars("encoding images", sum(len(c.samples) for c in categories)) as advance:
        items = build_items(categories, cache, vocabs, advance)
    cache_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    with bars("training head (epochs)", training.epochs) as advance:
        losses = fit_head(model, items, vocabs, training, advance)
    model.fit_summary = TrainingSummary(
        categories=tuple(c.name for c in categories),
        n_images=len(items),
        n_defective=sum(1 for i in items if i.type_index >= 0),
        cache_seconds=round(cache_seconds, 2),
        train_seconds=round(time.perf_counter() - t1, 2),
        epochs=len(losses),
        losses=tuple(losses),
    )
    return model
