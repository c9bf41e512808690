"""CLIP-family encoders (CLIP, SigLIP) via transformers: patch tokens and text embeddings in one space.

For users with a network (or a downloaded checkpoint): ``ClipEncoder.load("openai/clip-vit-base-patch16")``
or ``ClipEncoder.load("/models/siglip-base")``. Nothing is loaded or downloaded at import time.

Patch tokens are brought into the joint image–text space the way zero-shot segmentation
methods do (WinCLIP, APRIL-GAN): for CLIP, every token of the last layer goes through the
vision tower's final LayerNorm and the visual projection that the CLS token normally takes;
for SigLIP, whose image embedding is an attention-pooling head over the (already normalised)
last-layer tokens, the tokens themselves are used. Preprocessing is done by hand (resize to
the model's square input, normalise with the checkpoint's mean/std) so no torchvision is needed;
images are resized without cropping so every pixel of the part gets a patch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from defectlens.errors import ModelFileError

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_SIGLIP_MEAN = (0.5, 0.5, 0.5)
_SIGLIP_STD = (0.5, 0.5, 0.5)


@dataclass
class ClipPatches:
    """Patch tokens of a batch of images in the joint space."""

    tokens: torch.Tensor
    """(N, h, w, D) unit-norm patch embeddings."""
    image_embeddings: torch.Tensor
    """(N, D) unit-norm whole-image embeddings."""
    original_sizes: list[tuple[int, int]]
    """(height, width) of each input image."""


class ClipEncoder:
    """A CLIP or SigLIP checkpoint as an encoder of patches and prompts."""

    def __init__(self, model, tokenizer, kind: str, mean: Sequence[float], std: Sequence[float], name: str = ""):
        if kind not in ("clip", "siglip"):
            raise ValueError(f"kind must be 'clip' or 'siglip', got {kind!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.kind = kind
        self.name = name
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        vc = model.config.vision_config
        self.image_size = int(vc.image_size)
        self.patch_size = int(vc.patch_size)
        self._text_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def load(cls, name_or_dir: str | Path, local_files_only: bool = False) -> ClipEncoder:
        """Load a Hugging Face CLIP/SigLIP checkpoint by hub name or local folder.

        A local folder that is missing or lacks ``config.json`` raises :class:`ModelFileError`.
        """
        from transformers import AutoConfig, AutoTokenizer, CLIPModel, SiglipModel

        path = Path(str(name_or_dir))
        is_local = path.exists() or str(name_or_dir).startswith((".", "/", "~"))
        if is_local:
            if not (path / "config.json").is_file():
                raise ModelFileError("no config.json in the CLIP model folder", path, "pass a folder written by save_pretrained")
            local_files_only = True
        try:
            # A hub name the local cache holds is read from it: asked of the hub first, an offline machine retried for 26 s.
            config = AutoConfig.from_pretrained(str(name_or_dir), local_files_only=True)
            local_files_only = True
        except (OSError, ValueError) as exc:
            if local_files_only:
                raise ModelFileError(f"cannot read the CLIP config ({exc.__class__.__name__})", name_or_dir, "check the name or the folder") from None
            try:
                config = AutoConfig.from_pretrained(str(name_or_dir))
            except (OSError, ValueError) as hub:
                # Its own fix: "check the name" had been said on a machine that cannot reach the hub (zero-shot probe 2026-12-06).
                raise ModelFileError(
                    f"not in this machine's model cache, and the Hugging Face hub did not give it ({hub.__class__.__name__}): offline?",
                    name_or_dir, "check the name, or save the model with save_pretrained on a machine that has it and pass that folder",
                ) from None
        model_type = getattr(config, "model_type", "")
        model_cls: type[CLIPModel] | type[SiglipModel]
        if model_type == "clip":
            model_cls, kind, mean, std = CLIPModel, "clip", _CLIP_MEAN, _CLIP_STD
        elif model_type == "siglip":
            model_cls, kind, mean, std = SiglipModel, "siglip", _SIGLIP_MEAN, _SIGLIP_STD
        else:
            raise ModelFileError(
                f"model type {model_type!r} is not a CLIP or SigLIP model", name_or_dir, "use a CLIP or SigLIP checkpoint"
            )
        if is_local and (path / "preprocessor_config.json").is_file():
            # The checkpoint's own normalisation wins over the family default.
            pre = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
            mean, std = pre.get("image_mean", mean), pre.get("image_std", std)
        try:
            model = model_cls.from_pretrained(str(name_or_dir), local_files_only=local_files_only)
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_dir), local_files_only=local_files_only)
        except (OSError, ValueError) as exc:
            raise ModelFileError(
                f"cannot load the CLIP weights or tokenizer ({exc.__class__.__name__})",
                name_or_dir,
                "check the folder has model weights and tokenizer files",
            ) from None
        return cls(model, tokenizer, kind, mean, std, str(name_or_dir))

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the patch-token grid."""
        n = self.image_size // self.patch_size
        return n, n

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images -> (N, 3, S, S) normalised pixel values (resized, not cropped)."""
        s = self.image_size
        arrays = [np.asarray(Image.fromarray(img).resize((s, s), Image.Resampling.BICUBIC)) for img in images]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def encode_images(self, images: Sequence[np.ndarray]) -> ClipPatches:
        """Unit-norm patch tokens (N, h, w, D) and image embeddings (N, D) in the joint space."""
        pixels = self.preprocess(images)
        return self.encode_pixels(pixels, [tuple(img.shape[:2]) for img in images])

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor, original_sizes: list[tuple[int, int]]) -> ClipPatches:
        """Like :meth:`encode_images` from already preprocessed pixel values."""
        vm = self.model.vision_model
        out = vm(pixel_values=pixels, return_dict=True)
        hidden = out.last_hidden_state
        if self.kind == "clip":
            patches = self.model.visual_projection(vm.post_layernorm(hidden[:, 1:]))
            image = self.model.visual_projection(out.pooler_output)
        else:
            patches = hidden
            image = out.pooler_output if out.pooler_output is not None else hidden.mean(1)
        h, w = self.grid
        tokens = F.normalize(patches, dim=-1).reshape(len(pixels), h, w, -1)
        return ClipPatches(tokens, F.normalize(image, dim=-1), list(original_sizes))

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, D) unit-norm text embeddings (cached per string)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            max_len = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
            # SigLIP was trained on max-length padding; CLIP pools at the end token, so either works.
            padding = "max_length" if self.kind == "siglip" else True
            tok = self.tokenizer(missing, padding=padding, truncation=True, max_length=max_len, return_tensors="pt")
            tm = self.model.text_model
            kwargs = {"input_ids": tok["input_ids"]}
            if self.kind == "clip" and "attention_mask" in tok:
                kwargs["attention_mask"] = tok["attention_mask"]
            pooled = tm(**kwargs, return_dict=True).pooler_output
            if self.kind == "clip":
                pooled = self.model.text_projection(pooled)
            for t, e in zip(missing, F.normalize(pooled, dim=-1), strict=True):
                self._text_cache[t] = e
        return torch.stack([self._text_cache[t] for t in texts])
