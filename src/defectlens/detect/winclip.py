"""WinCLIP zero-shot anomaly scoring on a CLIP-family encoder (Jeong et al., CVPR 2023).

* Text side — a compositional prompt ensemble: state words ("flawless {}", "{} with defect"
  ...) × templates ("a cropped photo of the {}." ...) for the normal and the anomalous state;
  each state's embedding is the renormalised mean over all its prompts.
* Image side — windows of k×k patches slid over the patch-token grid (several k: small
  defects need small windows, large ones large windows). A window's embedding here is the
  mean of its patch tokens (the paper re-runs the ViT on each masked window; pooling tokens is
  the CPU-sized approximation). Its score is the softmax probability of the anomalous state.
* Aggregation — each patch gets the *harmonic* mean of the scores of all windows covering it
  (a patch is only as anomalous as its most normal-looking context says, which suppresses
  the halo around a defect); the map averages the scales, the single-patch scale and the
  image-level score, and is resized to the image's own resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from defectlens.encode.clip import ClipEncoder, ClipPatches
from defectlens.types import AnomalyResult

NORMAL_STATES: tuple[str, ...] = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)
ANOMALOUS_STATES: tuple[str, ...] = (
    "damaged {}",
    "broken {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
)
TEMPLATES: tuple[str, ...] = (
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for anomaly detection.",
    "a black and white photo of the {}.",
)


def prompt_ensemble(object_name: str, states: Sequence[str], templates: Sequence[str] = TEMPLATES) -> list[str]:
    """Every state word × template sentence for ``object_name``."""
    return [t.format(s.format(object_name)) for s in states for t in templates]


@dataclass(frozen=True)
class WinClipConfig:
    """Window scales and aggregation settings."""

    window_sizes: tuple[int, ...] = (2, 3)
    """Side of the sliding windows, in patches."""
    temperature: float = 0.07
    """CLIP's softmax temperature between the normal and anomalous prompts."""
    include_patch_level: bool = True
    """Also average in the single-patch (1×1 window) map."""
    include_image_score: bool = True
    """Also average in the image-level score (as WinCLIP does for zero-shot maps)."""

    def __post_init__(self) -> None:
        if not self.window_sizes or min(self.window_sizes) < 1:
            raise ValueError(f"window_sizes must be positive, got {self.window_sizes}")


def harmonic_aggregation(window_scores: torch.Tensor, k: int) -> torch.Tensor:
    """(N, H-k+1, W-k+1) scores of stride-1 k×k windows -> (N, H, W) per-patch harmonic means."""
    recip = 1.0 / window_scores.clamp_min(1e-6)[:, None]
    ones = torch.ones(1, 1, k, k, dtype=recip.dtype)
    # conv_transpose with a ones kernel spreads each window's value onto the patches it covers.
    total = F.conv_transpose2d(recip, ones)
    count = F.conv_transpose2d(torch.ones_like(recip), ones)
    return (count / total)[:, 0]


class WinClipScorer:
    """Zero-shot anomaly maps for one object name from a CLIP/SigLIP encoder."""

    def __init__(self, encoder: ClipEncoder, object_name: str, config: WinClipConfig | None = None):
        self.encoder = encoder
        self.object_name = object_name
        self.config = config or WinClipConfig()
        normal = encoder.embed_text(prompt_ensemble(object_name, NORMAL_STATES)).mean(0)
        anomalous = encoder.embed_text(prompt_ensemble(object_name, ANOMALOUS_STATES)).mean(0)
        self.text = F.normalize(torch.stack([normal, anomalous]), dim=-1)
        """(2, D): normal, anomalous."""

    def _prob(self, emb: torch.Tensor) -> torch.Tensor:
        """(..., D) unit embeddings -> (...) probability of the anomalous state."""
        logits = emb @ self.text.T / self.config.temperature
        return logits.softmax(-1)[..., 1]

    def score_tokens(self, tokens: torch.Tensor, image_embeddings: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, h, w, D) unit patch tokens -> ((N, h, w) anomaly map on the grid, (N,) image scores)."""
        n, h, w, _ = tokens.shape
        grid = tokens.permute(0, 3, 1, 2)
        maps = []
        if self.config.include_patch_level:
            maps.append(self._prob(tokens))
        for k in self.config.window_sizes:
            if k > min(h, w):
                continue
            windows = F.normalize(F.avg_pool2d(grid, k, stride=1), dim=1).permute(0, 2, 3, 1)
            maps.append(harmonic_aggregation(self._prob(windows), k))
        if not maps:
            maps.append(self._prob(tokens))
        image_level = self._prob(image_embeddings) if image_embeddings is not None else None
        if image_level is not None and self.config.include_image_score:
            maps.append(image_level.view(n, 1, 1).expand(n, h, w))
        anomaly = torch.stack(maps).mean(0)
        peak = anomaly.flatten(1).max(1).values
        scores = peak if image_level is None else 0.5 * (image_level + peak)
        return anomaly, scores

    @torch.inference_mode()
    def score_patches(self, patches: ClipPatches) -> list[AnomalyResult]:
        """Results at each image's original resolution from encoded patches."""
        grid_maps, scores = self.score_tokens(patches.tokens, patches.image_embeddings)
        out = []
        for m, s, (h, w) in zip(grid_maps, scores, patches.original_sizes, strict=True):
            full = F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            out.append(AnomalyResult(score=float(s), anomaly_map=full.numpy().astype(np.float32)))
        return out

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[AnomalyResult]:
        """Zero-shot score and original-resolution map for each RGB uint8 image."""
        out: list[AnomalyResult] = []
        for start in range(0, len(images), batch_size):
            out += self.score_patches(self.encoder.encode_images(images[start : start + batch_size]))
        return out
