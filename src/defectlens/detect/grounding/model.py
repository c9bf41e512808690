"""The grounding model: patch features -> connector -> the MiniLM text space, where two learned
segmentation tokens and the defect descriptions live.

* Connector: 1x1 conv -> GELU -> 3x3 conv -> GELU -> 1x1 conv, from the connector inputs of
  :mod:`defectlens.detect.grounding.features` into the 384-d all-MiniLM-L6-v2 space; patch
  embeddings are L2-normalised.
* Segmentation tokens ``SEG_NORMAL`` / ``SEG_DEFECT``: learned base vectors plus a learned linear
  function of the object name's text embedding (so "magnetic tile" and "steel strip" can shift
  what "defective" means). The anomaly map is, per patch, the softmax over the two
  temperature-scaled cosine similarities — the probability of ``SEG_DEFECT``.
* Defect types: each description is embedded through a prompt ensemble and a small residual
  text adapter; per-type maps are patch–description cosine similarities. A new type needs
  only a sentence.

Saved as ``grounding.json`` (settings, vocabulary, versions) + ``grounding.safetensors``
(weights and the vocabulary's text embeddings); never pickle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from defectlens.detect.grounding.features import (
    N_BATCH_CHANNELS,
    N_SIMILARITY_CHANNELS,
    GridInputs,
    add_batch_context,
    iter_grid_inputs,
)
from defectlens.detect.maps import image_score, smooth_map
from defectlens.encode import EncoderConfig, PatchEncoder, map_to_original
from defectlens.encode.text import TEXT_DIM, TEXT_MODEL_ID, TextEncoder
from defectlens.errors import ConfigError, ModelFileError
from defectlens.io.atomic import read_model_json, read_model_tensors, write_model_files
from defectlens.taxonomy import Taxonomy, parse_taxonomy
from defectlens.types import GroundingResult

if TYPE_CHECKING:
    from defectlens.detect.grounding.train import TrainingSummary

FORMAT = "defectlens.grounding"
FORMAT_VERSION = 2
CONFIG_FILE = "grounding.json"
WEIGHTS_FILE = "grounding.safetensors"
TOKEN_NAMES: tuple[str, ...] = ("SEG_NORMAL", "SEG_DEFECT")
BATCH_MAP_SIGMA = 4.0
"""Gaussian smoothing (pixels) of the batch mutual-score map."""
# Prompt templates for defect descriptions; their embeddings are averaged (a prompt ensemble
# is steadier than any single phrasing, as in CLIP zero-shot classification).
DESCRIPTION_TEMPLATES: tuple[str, ...] = (
    "{description}",
    "a photo of a {object} with {description}",
    "a close-up photo of a {name} defect on a {object}: {description}",
    "{object} with a {name} defect",
)
# Output channels of the seven stages of each known backbone: lets load() check a model's
# connector against its encoder settings without building the network first.
_STAGE_CHANNELS = {
    "efficientnet-lite0": (16, 24, 40, 80, 112, 192, 320),
    "efficientnet-lite2": (16, 24, 48, 88, 120, 208, 352),
}


def expected_in_channels(encoder: EncoderConfig) -> int | None:
    """Connector input width for an encoder config (None for a backbone not in the table)."""
    table = _STAGE_CHANNELS.get(encoder.backbone)
    return None if table is None else sum(table[s] for s in encoder.stages) + N_SIMILARITY_CHANNELS


def _default_encoder() -> EncoderConfig:
    # Stride-8 and stride-16 stages: local texture and structure, which transfer between parts
    # better than the semantic top of the network. standardize removes exposure differences.
    # Lite0: the backbone the grounding head was trained and measured on (the detectors'
    # default moved to Lite2 on the detector study; the zero-shot benchmark has not).
    return EncoderConfig(backbone="efficientnet-lite0", stages=(2, 4), aggregate=3, standardize=True)


@dataclass(frozen=True)
class GroundingConfig:
    """Settings that shape the model; saved with it."""

    encoder: EncoderConfig = field(default_factory=_default_encoder)
    side: int = 256
    """Each image is placed on its own canvas of about side² pixels, aspect ratio kept."""
    grey: bool = True
    """Convert images to grey before encoding."""
    hidden: int = 32
    """Width of the connector's hidden layers."""
    embed_dim: int = TEXT_DIM
    text_model: str = TEXT_MODEL_ID
    token_names: tuple[str, ...] = TOKEN_NAMES
    conditioned: bool = True
    """Shift the segmentation tokens by a learned function of the object name's embedding."""
    templates: tuple[str, ...] = DESCRIPTION_TEMPLATES
    top_k_fraction: float = 0.01
    """The image score is the mean of the top 1 % of on-image cells of the map."""
    batch_size: int = 8

    def __post_init__(self) -> None:
        if tuple(self.token_names) != TOKEN_NAMES:
            unknown = sorted(set(self.token_names) - set(TOKEN_NAMES))
            raise ConfigError(
                f"unknown segmentation token name(s) {', '.join(unknown) or self.token_names}",
                None,
                f"use the tokens {', '.join(TOKEN_NAMES)}",
            )
        if self.side < 64:
            raise ConfigError(f"side must be at least 64, got {self.side}", None, "use side >= 64")
        if self.embed_dim != TEXT_DIM:
            raise ConfigError(f"embed_dim must be {TEXT_DIM} (the text model's width)", None, f"use {TEXT_DIM}")

    def to_json(self) -> dict:
        """Plain-JSON form."""
        d = asdict(self)
        d["encoder"] = self.encoder.to_json()
        d["token_names"] = list(self.token_names)
        d["templates"] = list(self.templates)
        return d

    @classmethod
    def from_json(cls, d: dict) -> GroundingConfig:
        """Inverse of :meth:`to_json`."""
        return cls(
            **{
                **d,
                "encoder": EncoderConfig.from_json(d["encoder"]),
                "token_names": tuple(d["token_names"]),
                "templates": tuple(d["templates"]),
            }
        )


class GroundingHead(nn.Module):
    """The trainable part: connector, segmentation tokens, object conditioning, text adapter."""

    def __init__(self, in_channels: int, hidden: int = 32, embed_dim: int = TEXT_DIM, conditioned: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.connector = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="replicate"),
            nn.GELU(),
            nn.Conv2d(hidden, embed_dim, 1),
        )
        self.tokens = nn.Parameter(torch.randn(len(TOKEN_NAMES), embed_dim) * 0.05)
        self.conditioned = conditioned
        # Zero-initialised: training starts from object-independent tokens and moves away only
        # as far as the data asks (an unseen object then gets a small, not a wild, shift).
        self.condition = nn.Linear(embed_dim, len(TOKEN_NAMES) * embed_dim, bias=False)
        nn.init.zeros_(self.condition.weight)
        self.text_adapter = nn.Linear(embed_dim, embed_dim, bias=False)
        nn.init.zeros_(self.text_adapter.weight)
        self.log_seg_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.log_type_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    @property
    def seg_scale(self) -> torch.Tensor:
        """Inverse temperature of the token softmax (clamped: a runaway scale makes maps binary)."""
        return self.log_seg_scale.exp().clamp(1.0, 100.0)

    @property
    def type_scale(self) -> torch.Tensor:
        """Inverse temperature of the description softmax."""
        return self.log_type_scale.exp().clamp(1.0, 100.0)

    def embed_patches(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, C_in, h, w) -> (N, D, h, w) unit-norm patch embeddings in the text space."""
        return F.normalize(self.connector(inputs), dim=1)

    def seg_tokens(self, object_embedding: torch.Tensor) -> torch.Tensor:
        """(D,) object-name embedding -> (2, D) unit-norm SEG_NORMAL / SEG_DEFECT tokens."""
        tokens = self.tokens
        if self.conditioned:
            tokens = tokens + self.condition(object_embedding).view(len(TOKEN_NAMES), -1)
        return F.normalize(tokens, dim=-1)

    def adapt_text(self, text: torch.Tensor) -> torch.Tensor:
        """(T, D) description embeddings -> (T, D) unit-norm, through the residual adapter."""
        return F.normalize(text + self.text_adapter(text), dim=-1)

    def defect_logits(self, patches: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) patches, (2, D) tokens -> (N, h, w) logit of SEG_DEFECT vs SEG_NORMAL."""
        sims = torch.einsum("ndhw,td->nthw", patches, tokens) * self.seg_scale
        return sims[:, 1] - sims[:, 0]

    def type_similarity(self, patches: torch.Tensor, descriptions: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) patches, (T, D) adapted descriptions -> (N, T, h, w) cosine similarities."""
        return torch.einsum("ndhw,td->nthw", patches, descriptions)


@dataclass(frozen=True)
class Vocabulary:
    """A taxonomy with the text embeddings the model uses for it."""

    taxonomy: Taxonomy
    object_embedding: torch.Tensor
    """(D,) embedding of the object name."""
    description_embeddings: torch.Tensor
    """(T, D) prompt-ensemble embeddings of the descriptions (before the text adapter)."""
    sentence_embeddings: tuple[torch.Tensor, ...] = ()
    """Training only: per type, (S, D) embeddings of its description (row 0) and of its
    paraphrases, each a prompt ensemble; training draws one row per step. Empty: none given."""


def description_prompts(object_name: str, name: str, description: str, templates: Sequence[str]) -> list[str]:
    """The templated sentences whose mean embedding stands for one defect type."""
    return [t.format(object=object_name, name=name, description=description) for t in templates]


def embed_taxonomy(
    text: TextEncoder,
    taxonomy: Taxonomy,
    templates: Sequence[str],
    paraphrases: Mapping[str, Sequence[str]] | None = None,
) -> Vocabulary:
    """Embed a taxonomy's object name and descriptions (mean over templates, renormalised).

    ``paraphrases`` (type name -> other phrasings of its description) fill
    :attr:`Vocabulary.sentence_embeddings` for training; the description embeddings the model
    predicts with stay those of the taxonomy's own sentences.
    """

    def ensemble(name: str, sentence: str) -> torch.Tensor:
        e = torch.from_numpy(text.embed(description_prompts(taxonomy.object_name, name, sentence, templates))).mean(0)
        return F.normalize(e, dim=0)

    obj = torch.from_numpy(text.embed([f"a photo of a {taxonomy.object_name}"]))[0]
    rows = [ensemble(d.name, d.description or d.name) for d in taxonomy.defects]
    desc = torch.stack(rows) if rows else torch.zeros(0, TEXT_DIM)
    sentences: tuple[torch.Tensor, ...] = ()
    if paraphrases is not None:  # given, even if empty: every type then has its rows (1 + its paraphrases)
        sentences = tuple(
            torch.stack([row, *(ensemble(d.name, p) for p in paraphrases.get(d.name, ()))])
            for d, row in zip(taxonomy.defects, rows, strict=True)
        )
    return Vocabulary(taxonomy, obj, desc, sentences)


def batch_cue_map(g: GridInputs) -> np.ndarray:
    """The batch cue of one image read in a batch (:func:`add_batch_context` filled its
    channels): its first batch-context channel at the image's own resolution, smoothed like
    the memory bank's map (one patch's distance is noisy, a blob's is not). Needs no trained
    head: the benchmark compares it with other training-free detectors."""
    plane = g.inputs[None, -N_BATCH_CHANNELS : -N_BATCH_CHANNELS + 1].float()
    canvas = F.interpolate(plane, size=(g.canvas.height, g.canvas.width), mode="bilinear", align_corners=False)[0, 0]
    return smooth_map(map_to_original(canvas, g.placement), BATCH_MAP_SIGMA)


class GroundingModel:
    """Zero-shot anomaly maps and text-defined defect types for parts the model has never seen.

    Typical use::

        model = GroundingModel.load("models/grounding")
        results = model.predict(images, taxonomy=load_taxonomy("new_part/taxonomy.json", require_descriptions=True))
    """

    def __init__(
        self,
        config: GroundingConfig,
        head: GroundingHead | None = None,
        encoder: PatchEncoder | None = None,
        text: TextEncoder | None = None,
        vocabularies: Sequence[Vocabulary] = (),
    ):
        self.config = config
        self.encoder = encoder or PatchEncoder(config.encoder)
        if self.encoder.config != config.encoder:
            raise ConfigError("the encoder's settings differ from the grounding config", None, "pass a matching encoder")
        self.in_channels = self.encoder.feature_dim + N_SIMILARITY_CHANNELS
        self.head = head or GroundingHead(self.in_channels, config.hidden, config.embed_dim, config.conditioned)
        self.head.eval()
        self.text = text or TextEncoder()
        self.vocabularies = list(vocabularies)
        """The training taxonomies; the first is the default when predict gets none."""
        self._vocab_cache: dict[Taxonomy, Vocabulary] = {v.taxonomy: v for v in self.vocabularies}
        self.fit_summary: TrainingSummary | None = None
        """What training did, when this model was trained in this process (:func:`~defectlens.detect.grounding.train.train_grounding_model`)."""

    # ------------------------------------------------------------------ vocabulary
    def set_vocabularies(self, vocabularies: Sequence[Vocabulary]) -> None:
        """Replace the training vocabularies (the first is the default taxonomy of :meth:`predict`)."""
        self.vocabularies = list(vocabularies)
        self._vocab_cache.update({v.taxonomy: v for v in self.vocabularies})

    def token(self, name: str, taxonomy: Taxonomy | None = None) -> np.ndarray:
        """The (D,) unit-norm embedding of segmentation token ``name`` for ``taxonomy``'s object."""
        if name not in self.config.token_names:
            raise ConfigError(
                f"unknown segmentation token {name!r}", None, f"use one of {', '.join(self.config.token_names)}"
            )
        vocab = self.vocabulary(taxonomy)
        with torch.no_grad():
            return self.head.seg_tokens(vocab.object_embedding)[self.config.token_names.index(name)].numpy()

    def vocabulary(self, taxonomy: Taxonomy | None = None) -> Vocabulary:
        """Embeddings for ``taxonomy`` (cached); the first training taxonomy when None."""
        if taxonomy is None:
            if not self.vocabularies:
                raise ConfigError("the model has no default taxonomy", None, "pass the part's taxonomy (defectlens.taxonomy.load_taxonomy)")
            return self.vocabularies[0]
        if taxonomy not in self._vocab_cache:
            self._vocab_cache[taxonomy] = embed_taxonomy(self.text, taxonomy, self.config.templates)
        return self._vocab_cache[taxonomy]

    # ------------------------------------------------------------------ inference
    def forward_grid(self, inputs: torch.Tensor, vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C_in, h, w) inputs -> (N, h, w) defect probability and (N, T, h, w) type similarity."""
        patches = self.head.embed_patches(inputs)
        prob = torch.sigmoid(self.head.defect_logits(patches, self.head.seg_tokens(vocab.object_embedding)))
        desc = self.head.adapt_text(vocab.description_embeddings)
        return prob, self.head.type_similarity(patches, desc)

    def image_score(self, prob: torch.Tensor, footprint: torch.Tensor) -> float:
        """Mean of the top ``top_k_fraction`` of on-image cells of a (h, w) probability map."""
        values = prob[footprint > 0.5] if bool((footprint > 0.5).any()) else prob.reshape(-1)
        return image_score(values.numpy(), self.config.top_k_fraction)

    @torch.inference_mode()
    def predict_inputs(self, grids: Sequence[GridInputs], vocab: Vocabulary) -> list[GroundingResult]:
        """Results for images already turned into connector inputs (used by training and benchmarks)."""
        out = []
        for g in grids:
            prob, sims = self.forward_grid(g.inputs[None].float(), vocab)
            spec = g.canvas
            stacked = torch.cat([prob[:, None], sims], dim=1)
            canvas = F.interpolate(stacked, size=(spec.height, spec.width), mode="bilinear", align_corners=False)[0]
            full = np.stack([map_to_original(c, g.placement) for c in canvas])
            n_types = sims.shape[1]
            batch_map = batch_cue_map(g) if g.has_context else None
            out.append(
                GroundingResult(
                    score=self.image_score(prob[0], g.footprint),
                    anomaly_map=np.clip(full[0], 0.0, 1.0).astype(np.float32),
                    type_names=vocab.taxonomy.names,
                    type_maps=full[1 : 1 + n_types].astype(np.float32),
                    type_logit_scale=float(self.head.type_scale),
                    batch_map=batch_map,
                )
            )
        return out

    def predict(
        self, images: Sequence[np.ndarray], taxonomy: Taxonomy | None = None, progress=None
    ) -> list[GroundingResult]:
        """Anomaly map (original resolution, in [0, 1]), image score and per-type maps for RGB images.

        ``taxonomy`` names the part and its defect types; default: the first training taxonomy.
        The images are read together: each is compared with the others (batch context), so
        pass a batch of the same part (16 or more images read best); one image alone is read
        from its own patches only.
        """
        vocab = self.vocabulary(taxonomy)
        grids: list[GridInputs | None] = [None] * len(images)
        for i, g in iter_grid_inputs(
            self.encoder, images, self.config.side, self.config.grey, self.config.batch_size, progress
        ):
            grids[i] = g
        return self.predict_inputs(add_batch_context([g for g in grids if g is not None]), vocab)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write ``grounding.json`` + ``grounding.safetensors`` atomically."""
        tensors = {f"head.{k}": v.detach().contiguous() for k, v in self.head.state_dict().items()}
        for i, v in enumerate(self.vocabularies):
            tensors[f"vocab.{i}.object"] = v.object_embedding.contiguous()
            tensors[f"vocab.{i}.descriptions"] = v.description_embeddings.contiguous()
        config = {
            "config": self.config.to_json(),
            "in_channels": self.in_channels,
            "text_model": self.config.text_model,
            "token_names": list(self.config.token_names),
            "taxonomies": [v.taxonomy.to_json() for v in self.vocabularies],
            **({"training": extra} if extra else {}),
        }
        write_model_files(directory, WEIGHTS_FILE, tensors, CONFIG_FILE, config, FORMAT, FORMAT_VERSION)

    @classmethod
    def load(
        cls, directory: str | Path, encoder: PatchEncoder | None = None, text: TextEncoder | None = None
    ) -> GroundingModel:
        """Load a saved model. Every check (format, version, encoder, tokens, tensor shapes) runs
        before the encoder or text model is built, so a wrong file fails in milliseconds. The layers'
        initial weights, replaced by the saved ones, are drawn from a forked generator: the caller's
        random state is left as it was."""
        with torch.random.fork_rng(devices=[]):
            return cls._load(directory, encoder, text)

    @classmethod
    def _load(cls, directory: str | Path, encoder: PatchEncoder | None, text: TextEncoder | None) -> GroundingModel:
        root = Path(directory)
        meta = _read_json(root)
        path = root / CONFIG_FILE
        tokens = meta.get("token_names")
        if not isinstance(tokens, list) or tuple(tokens) != TOKEN_NAMES:
            unknown = sorted(set(tokens or []) - set(TOKEN_NAMES)) if isinstance(tokens, list) else tokens
            raise ModelFileError(
                f"unknown segmentation token name(s) {unknown} (this defectlens knows {', '.join(TOKEN_NAMES)})",
                path,
                "re-train the grounding model with this version of defectlens",
            )
        if meta.get("text_model") != TEXT_MODEL_ID:
            raise ModelFileError(
                f"model was trained with text model {meta.get('text_model')!r}, not {TEXT_MODEL_ID}",
                path,
                "re-train the grounding model",
            )
        try:
            config = GroundingConfig.from_json(meta["config"])
            taxonomies = [parse_taxonomy(t, path, require_descriptions=True) for t in meta.get("taxonomies", [])]
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"invalid grounding settings ({exc})", path, "re-train the grounding model") from None
        config.encoder.require_same(encoder.config if encoder else None, root, "re-train the grounding model")
        weights = root / WEIGHTS_FILE
        tensors = read_model_tensors(weights, "grounding weights", "re-train the grounding model")
        in_channels = meta.get("in_channels")
        expected = expected_in_channels(config.encoder)
        if expected is not None and expected != in_channels:
            raise ModelFileError(
                f"connector weights take {in_channels} channels but {config.encoder.backbone} stages "
                f"{config.encoder.stages} give {expected}",
                path,
                "the model was trained with another encoder: re-train it",
            )
        w0 = tensors.get("head.connector.0.weight")
        if w0 is None or w0.shape[1] != in_channels or w0.shape[0] != config.hidden:
            raise ModelFileError(
                f"connector weights have shape {None if w0 is None else tuple(w0.shape)}, expected ({config.hidden}, {in_channels}, 1, 1)",
                weights,
                "the file belongs to another model: re-train it",
            )
        head = GroundingHead(in_channels, config.hidden, config.embed_dim, config.conditioned)
        state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"weights do not fit the model ({str(exc).splitlines()[0]})", weights, "re-train it") from None
        vocabs = []
        for i, tax in enumerate(taxonomies):
            obj, desc = tensors.get(f"vocab.{i}.object"), tensors.get(f"vocab.{i}.descriptions")
            if obj is None or desc is None or desc.shape != (len(tax.defects), config.embed_dim):
                raise ModelFileError(f"text embeddings of taxonomy #{i + 1} are missing or malformed", weights, "re-train it")
            vocabs.append(Vocabulary(tax, obj, desc))
        # Only now build the (slow) encoders: every cheap check has passed.
        model = cls(config, head, encoder, text, vocabs)
        if model.in_channels != in_channels:
            raise ModelFileError(
                f"model expects {in_channels} input channels but {config.encoder.backbone} gives {model.in_channels}",
                root,
                "the model was trained with another encoder: re-train it",
            )
        return model


def _read_json(root: Path) -> dict:
    return read_model_json(root, CONFIG_FILE, FORMAT, FORMAT_VERSION, "grounding model", "`defectlens train-grounding`")
