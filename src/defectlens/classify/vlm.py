"""Defect-type classification by a vision-language model behind an OpenAI-compatible API.

As in VELM, the model is shown three images — the inspected image, the same image with the
region outlined, and one normal reference image of the part — together with the taxonomy's
descriptions, and asked to name the class of the outlined region. Its reply is parsed
strictly: exactly one known class name, or the region is ``unknown`` (never a crash, never
a guess from a reply that names several classes).

The API key is read from an environment variable at construction and lives only in request
headers: it never appears in ``repr``, log records or exception messages.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage

from defectlens.classify.regions import Classification, region_masks
from defectlens.errors import DefectlensError
from defectlens.taxonomy import UNKNOWN, Taxonomy, normal_type_name
from defectlens.types import Inspection, RegionType

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
OUTLINE_RGB = (255, 0, 0)
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class VLMError(DefectlensError):
    """The vision-language endpoint could not be reached or answered with an error."""


@dataclass(frozen=True)
class VLMConfig:
    """Where the endpoint is and how patiently to talk to it."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """Prefix of the OpenAI-compatible API; ``/chat/completions`` is appended."""
    model: str = "default"
    api_key_env: str = "DEFECTLENS_VLM_API_KEY"
    """Name of the environment variable holding the key (unset: no Authorization header)."""
    timeout_s: float = 30.0
    max_retries: int = 2
    """Extra attempts after the first, for timeouts, connection errors, 429 and 5xx."""
    backoff_s: float = 0.5
    """Wait before retry i is ``backoff_s * 2**i``."""
    max_image_side: int = 768
    """Images are shrunk to this side before sending (payload size, server limits)."""
    max_tokens: int = 16


@dataclass(frozen=True)
class VLMDecision:
    """The parsed answer for one region, and what the model actually said."""

    region_type: RegionType
    reply: str | None
    """Raw reply text; None when no reply came."""
    note: str | None = None
    """Why the region is unknown (off-topic reply, endpoint failure), if it is."""


def parse_choice(reply: str, names: Sequence[str]) -> str | None:
    """The one taxonomy name ``reply`` states, or None when it states none or several.

    Whole-word in any script, case-insensitive, plural-tolerant ('cracks' is 'crack'). A reply
    naming two classes is ambiguous by design, even if it says 'not a crack but a blowhole'.
    """
    text = normal_type_name(reply.strip()).casefold()
    word = r"[^\W_]"  # a letter or digit of any script
    hits = {n for n in names if re.search(rf"(?<!{word}){re.escape(normal_type_name(n).casefold())}(e?s)?(?!{word})", text)}
    return next(iter(hits)) if len(hits) == 1 else None


def outline_regions(image: np.ndarray, masks: Sequence[np.ndarray], width: int = 2) -> np.ndarray:
    """Copy of ``image`` with each mask's border drawn in red, ``width`` pixels thick."""
    out = image.copy()
    for m in masks:
        m = np.asarray(m, bool)
        edge = m & ~ndimage.binary_erosion(m, iterations=1, border_value=0)
        if width > 1:
            edge = ndimage.binary_dilation(edge, iterations=width - 1)
        out[edge] = OUTLINE_RGB
    return out


def png_data_url(image: np.ndarray, max_side: int) -> str:
    """``data:image/png;base64,...`` of an RGB array, shrunk to ``max_side`` if larger."""
    pil = Image.fromarray(image)
    scale = max_side / max(pil.size)
    if scale < 1:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class VLMClassifier:
    """Classifies regions by asking an OpenAI-compatible vision-language chat endpoint."""

    def __init__(
        self,
        config: VLMConfig,
        taxonomy: Taxonomy,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        taxonomy.require_descriptions()
        self.config = config
        self.taxonomy = taxonomy
        self._api_key = os.environ.get(config.api_key_env) or None
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        # Imported here: only a VLM classifier needs it, and every process that inspects imports this module.
        import httpx

        self._client = httpx.Client(timeout=config.timeout_s, headers=headers, transport=transport)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return f"VLMClassifier(base_url={self.config.base_url!r}, model={self.config.model!r}, api_key=<{key}, from ${self.config.api_key_env}>)"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> VLMClassifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def messages(self, image: np.ndarray, mask: np.ndarray, reference: np.ndarray | None) -> list[dict]:
        """The chat messages for one region (public so the prompt can be inspected and tested)."""
        side = self.config.max_image_side
        classes = "\n".join(f"- {d.name}: {d.description}" for d in self.taxonomy.defects)
        intro = (
            f"You inspect a {self.taxonomy.object_name}. Image 1 is the inspected part. Image 2 is the same image with "
            "the suspect region outlined in red."
            + (" Image 3 is a normal part without defects, for comparison." if reference is not None else "")
            + f"\nDefect classes:\n{classes}\n"
            "Which class is the outlined region? Answer with exactly one class name from the list, "
            "or 'unknown' if none fits. No other words."
        )
        content: list[dict] = [{"type": "text", "text": intro}]
        images = [image, outline_regions(image, [mask])] + ([reference] if reference is not None else [])
        content += [{"type": "image_url", "image_url": {"url": png_data_url(im, side)}} for im in images]
        return [{"role": "user", "content": content}]

    def _post(self, payload: dict) -> dict:
        import httpx

        url = self.config.base_url.rstrip("/") + "/chat/completions"
        last = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self._sleep(self.config.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post(url, json=payload)
            except httpx.TimeoutException:
                last = f"timed out after {self.config.timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"cannot connect ({exc.__class__.__name__})"
                continue
            if resp.status_code in _RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                body = self._redact(resp.text[:200].replace("\n", " "))
                raise VLMError(f"endpoint answered HTTP {resp.status_code}: {body}", url, "check the model name, the API key variable and the URL")
            try:
                return resp.json()
            except ValueError:
                raise VLMError("endpoint answered with non-JSON", url, "point base_url at an OpenAI-compatible /v1 API") from None
        raise VLMError(
            f"{last} ({self.config.max_retries + 1} attempt(s))",
            url,
            "start the server or raise timeout_s; the region is reported as unknown",
        )

    def classify_region(
        self, image: np.ndarray, mask: np.ndarray, reference: np.ndarray | None = None, region_index: int = 1
    ) -> VLMDecision:
        """Ask the endpoint about one region; failures give an ``unknown`` decision with a note."""
        payload = {
            "model": self.config.model,
            "messages": self.messages(image, mask, reference),
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
            "logprobs": True,
        }
        try:
            data = self._post(payload)
        except VLMError as exc:
            msg = self._redact(str(exc))
            log.warning("VLM region %d: %s", region_index, msg)
            return VLMDecision(RegionType(region_index, UNKNOWN, 0.0, "vlm"), None, f"region {region_index}: VLM failed: {msg}")
        reply, confidence = _reply_and_confidence(data)
        if reply is None:
            return VLMDecision(
                RegionType(region_index, UNKNOWN, 0.0, "vlm"), None, f"region {region_index}: VLM reply had no message text"
            )
        choice = parse_choice(reply, self.taxonomy.names)
        if choice is None:
            shown = self._redact(" ".join(reply.split())[:80])
            return VLMDecision(
                RegionType(region_index, UNKNOWN, 0.0, "vlm"),
                reply,
                f"region {region_index}: VLM reply names no single known type ({shown!r}); unknown",
            )
        return VLMDecision(RegionType(region_index, choice, confidence, "vlm", ((choice, confidence),)), reply)

    def classify(
        self, image: np.ndarray, masks: Mapping[int, np.ndarray], reference: np.ndarray | None = None
    ) -> Classification:
        """Types of several regions ({region index: mask}); notes say which fell back to unknown."""
        result = Classification()
        if reference is None and masks:
            result.notes.append("no normal reference image was sent to the VLM")
        for idx, m in masks.items():
            d = self.classify_region(image, m, reference, idx)
            result.region_types.append(d.region_type)
            if d.note:
                result.notes.append(d.note)
        return result

    def classify_inspection(self, image: np.ndarray, inspection: Inspection, reference: np.ndarray | None = None) -> Classification:
        """Types of every region of an :class:`Inspection`."""
        return self.classify(image, region_masks(inspection), reference)


def _reply_and_confidence(data: dict) -> tuple[str | None, float]:
    """Message text of the first choice, and exp(mean token logprob) when the server sent logprobs.

    Without logprobs the confidence is 1.0: a chat reply carries no calibrated probability.
    """
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None, 0.0
    if not isinstance(text, str):
        return None, 0.0
    confidence = 1.0
    tokens = ((choice.get("logprobs") or {}).get("content") or []) if isinstance(choice, dict) else []
    lps = [float(t["logprob"]) for t in tokens if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]
    if lps:
        confidence = float(math.exp(sum(lps) / len(lps)))
    return text, confidence
